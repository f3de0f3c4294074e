"""Bounded telemetry history (the latest value lives in :mod:`controller.fleet.presence`).

Units send telemetry on change and every 60 s. Storing all of it would grow without bound
(5,000 units → 7 million rows a day), so a sample is kept per node when its state changed
(power, volume, what plays, faults, IP, firmware) or ``every_s`` passed — but never more often
than ``min_gap_s`` — and samples older than ``keep_s`` are deleted. That bounds the history to
``keep_s / min_gap_s`` rows per node at worst and ``keep_s / every_s`` for a steady one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from controller.core.background import Periodic
from controller.core.writer import DbWriter
from controller.fleet.models import TelemetrySample
from controller.fleet.presence import Presence
from devices import protocol as p
from devices.link import UnitBus

logger = logging.getLogger(__name__)

#: Fields whose change is worth a sample of its own.
STATE_KEYS = ("power", "volume", "playing", "source", "faults", "ip", "fw")


class TelemetryHistory:
    def __init__(self, link: UnitBus, presence: Presence, writer: DbWriter, *,
                 every_s: float = 300.0, min_gap_s: float = 30.0, keep_s: float = 2 * 86400.0,
                 prune_every_s: float = 3600.0) -> None:
        self.presence = presence
        self.writer = writer
        self.every_s = every_s
        self.min_gap_s = min_gap_s
        self.keep_s = keep_s
        self.prune_every_s = prune_every_s
        self.stored = 0
        self._last: dict[str, tuple[float, tuple[Any, ...]]] = {}
        self._pruner = Periodic("telemetry-prune", prune_every_s, self.prune, first_immediately=True)
        link.on("telemetry", self._on_telemetry)

    def _on_telemetry(self, node_id: str, msg: p.Telemetry) -> None:
        if not self.presence.knows(node_id):
            return  # presence counts unknown ids
        data = msg.model_dump(exclude={"v", "node_id"})
        key = tuple(str(data.get(k)) for k in STATE_KEYS)
        now = time.monotonic()
        last = self._last.get(node_id)
        if last is not None:
            age = now - last[0]
            if age < self.min_gap_s or (key == last[1] and age < self.every_s):
                return
        self._last[node_id] = (now, key)
        sample = TelemetrySample(node_id=node_id, at=p.now_ms(), data=data)
        self.stored += 1
        self.writer.submit(lambda s: s.add(sample))

    def history(self, s: Session, node_id: str, *, since_ms: int | None = None,
                limit: int = 200) -> list[TelemetrySample]:
        """Newest first."""
        q = select(TelemetrySample).where(TelemetrySample.node_id == node_id)
        if since_ms is not None:
            q = q.where(TelemetrySample.at >= since_ms)
        return list(s.exec(q.order_by(col(TelemetrySample.at).desc()).limit(limit)).all())

    # ------------------------------------------------------------------ retention

    def start(self) -> None:
        self._pruner.start()

    async def stop(self) -> None:
        await self._pruner.stop()

    def prune(self) -> None:
        """Queue the deletion of samples older than ``keep_s``."""
        cutoff = p.now_ms() - int(self.keep_s * 1000)

        def op(s: Session) -> None:
            s.exec(delete(TelemetrySample).where(col(TelemetrySample.at) < cutoff))  # type: ignore[call-overload]

        self.writer.submit(op)

