"""Live sessions owned by one controller: a ``live_owner`` lease row, and the end of a session
whose owner is gone.

A live session cannot be taken over: the officer's phone speaks to the controller that holds its
WebSocket, and that connection went with it. So the lease (the broadcasts' machinery,
controller/airing/ownership.py, on its own table) is only there so that a dead owner's session
is *ended* cleanly by whoever takes its expired lease (:func:`end_orphan`): its units are told
``live_stop`` (they would stop by themselves when frames stop coming, but a unit that missed the
last frame must not keep its amplifier on), the session is recorded ended with the reason
:data:`CONTROLLER_LOST` and its lease goes. The phone, reconnecting through the proxy to
another controller, reads the record (``GET /api/live/sessions/{id}``) and says so in
Vietnamese. Its zones were held in the dead owner's arbiter only: nothing else is blocked by it.

Only a session whose lease existed and expired is ended this way (a lease is taken right after
the session opens; a session whose controller died in those few milliseconds keeps its row).
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from controller.accounts.audit import details, record, where
from controller.airing.ownership import Ownership, Reach
from controller.live.models import LiveLog
from devices import protocol as p
from devices.link import UnitBus

logger = logging.getLogger(__name__)

CONTROLLER_LOST = "controller lost"

#: Expired live leases (their owner is gone), or ours (a restart: the phones' connections are gone).
LIVE = "SELECT o.{key} FROM {table} o WHERE o.expires_at < {now} OR o.holder = :me"


def live_lease(engine: Engine, holder: str, ttl_s: float, *, reach: Reach | None = None) -> Ownership:
    return Ownership(engine, holder, ttl_s, reach=reach, table="live_owner", key="session_id", orphans=LIVE)


def end_orphan(engine: Engine, lease: Ownership, session_id: str) -> list[str]:
    """A dead owner's session, its lease just taken by us: recorded ended (``controller lost``, in
    the audit log too) and its lease deleted in one transaction; the units it was on, to be told
    ``live_stop`` (none if the session had ended already). A session its owner died before
    recording is recorded now."""
    with Session(engine) as s:
        row = s.get(LiveLog, session_id)
        if row is not None and row.state == "ended":
            nodes: list[str] = []
        else:
            row = row or LiveLog(id=session_id, opened_at=p.now_ms())
            nodes = [str(n) for n in row.nodes]
            row.state, row.reason, row.ended_at = "ended", CONTROLLER_LOST, p.now_ms()
            s.add(row)
            record(s, row.user, "live_end", f"live:{session_id}", details(
                **where(row.target), units=len(nodes), priority=row.priority, reason=CONTROLLER_LOST,
                seconds=round((row.ended_at - row.started_at) / 1000) if row.started_at else 0))
        s.connection().execute(text("DELETE FROM live_owner WHERE session_id = :id AND holder = :me"),
                               {"id": session_id, "me": lease.holder})
        s.commit()
    if nodes:
        logger.warning("live session %s ended: its controller is gone (%d unit(s) told to stop)", session_id,
                       len(nodes))
    return nodes


def stop_units(link: UnitBus, session_id: str, nodes: list[str]) -> None:
    if nodes:
        link.command([p.AudioScope(kind="node", id=n) for n in nodes], "live_stop",
                     {"session": session_id, "reason": CONTROLLER_LOST}, expires_at=p.now_ms() + 10_000)
