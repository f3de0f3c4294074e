"""A controller's schedule runner alone, in its own process, for kill -9 tests.

    python -m tests.scheduler.child DATABASE_URL HOLDER [SETTINGS_JSON]

SETTINGS_JSON: ScheduleSettings fields (default: the fast test settings).
Prints ``leading`` once it fires the schedules, then runs until it is killed.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from scheduler.settings import ScheduleSettings
from tests.scheduler.ward import FAST, runner


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
    given = ScheduleSettings.model_validate_json(sys.argv[3]) if len(sys.argv) > 3 else FAST
    asyncio.run(main(sys.argv[1], sys.argv[2], given))
