"""Units changed by another controller, applied to this one's caches (change feed handlers).

The feed (controller/core/feed.py) hands over the ids of units that a peer provisioned,
re-zoned, renamed, retired (kind ``unit``), gave a desired volume (``unit_setting``) or whose
alarm it cleared (``unit_alarm``); ``None`` means any unit may have changed. The rows are read
in a worker thread and applied on the event loop, where presence lives. The unit's online state
needs nothing from here: every controller subscribes to the units' state and heartbeats and
remembers ids it does not know yet, so a unit already online shows online as soon as it is known.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from controller.core.db import Database
from controller.fleet.directory import NodeDirectory
from controller.fleet.presence import Presence
from controller.fleet.registry import UnitRecord, cleared_alarms, read_units

logger = logging.getLogger(__name__)

LOOP_READ_MAX = 50  # units read on the event loop; more in a worker thread

class FleetSync:
    def __init__(self, db: Database, presence: Presence, directory: NodeDirectory, *,
                 on_retired: Callable[[str], None]) -> None:
        self.db = db
        self.presence = presence
        self.directory = directory
        self._on_retired = on_retired  # e.g. delivery: the unit's unfinished deliveries end
        self.applied = 0

    def _read(self, keys: frozenset[str] | None) -> list[UnitRecord]:
        with self.db.session() as s:
            return read_units(s, keys)

    async def units(self, keys: frozenset[str] | None) -> None:
        """Units provisioned, changed or retired elsewhere (also their desired settings).

        A few units are read on the event loop (a millisecond), as this controller's own routes
        reload them: so a change of the same unit made here meanwhile cannot be overwritten by
        an older read. Many (a reload of everything) are read in a worker thread."""
        if keys is not None and len(keys) <= LOOP_READ_MAX:
            records = self._read(keys)
        else:
            records = await asyncio.to_thread(self._read, keys)
        retired = self.presence.apply(records)
        self.directory.changed()  # a rename or re-zone the directory's signature does not see
        for node_id in retired:
            self._on_retired(node_id)
        self.applied += len(records)
        logger.info("change feed: %d unit(s) reloaded (%s), %d retired", len(records),
                    "all" if keys is None else ",".join(sorted(keys)[:5]), len(retired))

    async def alarms(self, keys: frozenset[str] | None) -> None:
        def read() -> list[str]:
            with self.db.session() as s:
                return cleared_alarms(s, keys)

        for node_id in await asyncio.to_thread(read):
            self.presence.alarm_cleared(node_id)
