"""A controller's schedule runner alone, in its own process, for kill -9 tests.

    python -m tests.scheduler.child DATABASE_URL HOLDER [SETTINGS_JSON]

SETTINGS_JSON: ScheduleSettings fields (default: the fast test settings).
``LP_CLOCK_OFFSET_S=30`` (or -30): this process's wall clock that far off the machine's, and so
off the database's (:func:`skew_clock`).
Prints ``leading`` once it fires the schedules, then runs until it is killed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from datetime import datetime, timedelta, tzinfo

import apscheduler.schedulers.base as aps_base

from scheduler.settings import ScheduleSettings
from tests.scheduler.ward import FAST, runner

logger = logging.getLogger("tests.scheduler.child")


def skew_clock(offset_s: float) -> None:
    """Every wall-clock reading of the runner off by ``offset_s``: ``time.time`` (the controller's
    epoch ms, devices.protocol.now_ms, and the runner's lateness) and the job scheduler's
    ``datetime.now`` (when it wakes a slot's job). The monotonic clock is left alone: it is no wall
    clock (the lease's local validity runs on it), and the database's clock is the server's."""
    real_time, real_ns = time.time, time.time_ns
    time.time = lambda: real_time() + offset_s
    time.time_ns = lambda: real_ns() + int(offset_s * 1e9)

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) + timedelta(seconds=offset_s)

    aps_base.datetime = Skewed  # type: ignore[misc]  # apscheduler reads only .now() through it
    logger.info("wall clock %+.1f s off", offset_s)


async def main(url: str, holder: str, settings: ScheduleSettings = FAST) -> None:
    svc = runner(url, settings, holder=holder)
    await svc.start()
    while not svc.leading:
        await asyncio.sleep(0.05)
    sys.stdout.write("leading\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if offset := float(os.environ.get("LP_CLOCK_OFFSET_S", "0")):
        skew_clock(offset)
    given = ScheduleSettings.model_validate_json(sys.argv[3]) if len(sys.argv) > 3 else FAST
    asyncio.run(main(sys.argv[1], sys.argv[2], given))
