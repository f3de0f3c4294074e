"""A periodic background job of a long-lived service: started and stopped in the app's lifespan.

Every service that sweeps, flushes or ticks on a timer uses this instead of its own task
bookkeeping; a failing round is logged and the next one runs (one bug must not stop the loop).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, interval_s: float, fn: Callable[[], Awaitable[object] | object],
                 *, first_immediately: bool = False) -> None:
        self.name = name
        self.interval_s = interval_s
        self._fn = fn
        self._first = first_immediately
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        if not self._first:
            await asyncio.sleep(self.interval_s)
        while True:
            try:
                result = self._fn()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("%s: a round failed", self.name)
            await asyncio.sleep(self.interval_s)
