"""When things air: the air-time scheduler (APScheduler 3.x, Asia/Ho_Chi_Minh)."""

from scheduler.service import TIMEZONE, AirScheduler

__all__ = ["TIMEZONE", "AirScheduler"]
