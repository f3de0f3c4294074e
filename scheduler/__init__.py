"""When things air: the air-time scheduler (APScheduler 3.x, Asia/Ho_Chi_Minh)."""

from scheduler.service import AirScheduler, TIMEZONE

__all__ = ["TIMEZONE", "AirScheduler"]
