"""When things air: the air-time scheduler (APScheduler 3.x, Asia/Ho_Chi_Minh).

Time only: it imports nothing of ``controller/``. What a slot airs is asked of the controller
through the ports in scheduler/ports.py.
"""

from scheduler.airtimer import AirScheduler
from scheduler.clock import TIMEZONE

__all__ = ["TIMEZONE", "AirScheduler"]
