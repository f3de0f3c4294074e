"""A controller's schedule runner alone, in its own process, for kill -9 tests.

    python -m tests.scheduler.child DATABASE_URL HOLDER

Prints ``leading`` once it fires the schedules, then runs until it is killed.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from tests.scheduler.ward import FAST, runner


async def main(url: str, holder: str) -> None:
    svc = runner(url, FAST, holder=holder)
    await svc.start()
    while not svc.leading:
        await asyncio.sleep(0.05)
    sys.stdout.write("leading\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
