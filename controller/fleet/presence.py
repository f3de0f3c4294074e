"""Node presence: birth / last-will / heartbeat → online or offline, truthfully.

A node counts as online only while the controller's broker link is up *and* the node's own
retained state says online *and* it has been heard from within the heartbeat timeout.
Changes are recorded as NodeEvents. Two units using one id are detected from their
alternating ``session`` values and raised once as a ``duplicate_id`` alarm instead of
following the flapping. The alarm clears by itself once no return to an earlier session has
been seen for :data:`DUP_CLEAR_S` (the second unit is gone), or when an operator clears it
(:meth:`Presence.clear_alarm`); it is raised again if the two units are still there
(docs/protocol.md §1).

Other services ask (:meth:`Presence.is_online`, :meth:`Presence.groups_of`,
:meth:`Presence.members`, :meth:`Presence.view`, ...) and never read the registry itself.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import Session

from controller.core.background import Periodic
from controller.core.writer import DbWriter
from controller.fleet.models import Node, NodeEvent
from controller.fleet.presence_rows import PresenceChange, write_changes
from controller.fleet.registry import UnitRecord, read_units
from devices import protocol as p
from devices.link import UnitBus

logger = logging.getLogger(__name__)

DUP_WINDOW_S = 60.0
_NODE = Node.__table__  # type: ignore[attr-defined]
_TELEMETRY = (update(_NODE).where(_NODE.c.id == bindparam("b_id"))
              .values(telemetry=bindparam("b_tel"), last_seen=bindparam("b_seen")))
DUP_SWITCHES = 3
DUP_QUIET_S = 600.0
DUP_CLEAR_S = 600.0  # the duplicate_id alarm clears after this long without a return to an earlier session


def write_telemetry(s: Session, rows: list[tuple[str, dict[str, Any], int]]) -> None:
    """The latest telemetry (and when it came) of each unit in ``rows``: one executemany UPDATE."""
    last = {node_id: (telemetry, at) for node_id, telemetry, at in rows}
    s.execute(_TELEMETRY, [{"b_id": n, "b_tel": t, "b_seen": at} for n, (t, at) in last.items()])


@dataclass
class NodeLive:
    status: str = "unknown"
    session: str = ""
    last_heard: float = 0.0  # monotonic
    last_seen_ms: int | None = None
    groups: list[str] = field(default_factory=list)
    telemetry: dict[str, Any] = field(default_factory=dict)
    switches: deque[float] = field(default_factory=lambda: deque(maxlen=16))
    sessions: deque[str] = field(default_factory=lambda: deque(maxlen=8))  # recent earlier sessions
    alarm: str = ""
    alarm_at: float = 0.0
    volume: int = 70  # desired volume (controller/fleet/commands.py), sent in the retained config
    name: str = ""  # the unit's name as staff gave it (POST/PATCH /api/nodes), sent in the config
    board: tuple[str, str] = ("", "")  # (hw, fw) of its last birth (empty until one since start)
    birth_ts: int = 0  # the ``ts`` of the last birth seen: a new one while online = it reconnected


@dataclass(frozen=True)
class UnitView:
    """What presence knows of one unit right now (a snapshot for the API and the pages)."""

    status: str  # online | offline | shutdown | unknown
    alarm: str
    session: str
    last_seen_ms: int | None
    telemetry: Mapping[str, Any]  # the latest report, as the unit sent it (empty if none yet)
    groups: tuple[str, ...]
    board: tuple[str, str] = ("", "")  # (hw, fw) as its last birth said, ("", "") if none since start


class Presence:
    def __init__(self, link: UnitBus, writer: DbWriter, *, heartbeat_timeout_s: float = 45.0,
                 attention: p.AttentionTone | None = None) -> None:
        self.link = link
        self.writer = writer
        self.attention = attention  # the tone every config carries (controller/fleet/attention.py)
        self.timeout = heartbeat_timeout_s
        self._units: dict[str, NodeLive] = {}
        self.unknown_ids: dict[str, int] = {}
        #: last birth/heartbeat of ids not provisioned yet (bounded): applied when they are added
        self._unknown_seen: dict[str, tuple[str, float]] = {}
        self._listeners: list[Callable[[str, bool], None]] = []
        self._sweeper = Periodic("presence-sweep", min(5.0, self.timeout / 3), self.check_timeouts)
        link.on("state", self._on_state)
        link.on("heartbeat", self._on_heartbeat)
        link.on("telemetry", self._on_telemetry)
        link.on_connect(self.publish_configs)

    # ------------------------------------------------------------------ registry

    def use_attention(self, tone: p.AttentionTone | None) -> None:
        """The tone every config carries from now on (loaded from the audio store at start)."""
        self.attention = tone

    def load(self, s: Session) -> None:
        """(Re)load the node list and group membership from the database."""
        self.apply(read_units(s))

    def apply(self, units: Iterable[UnitRecord]) -> list[str]:
        """Units as the database has them now (every unit, or those changed elsewhere: the change
        feed, controller/fleet/sync.py). Returns the ids retired by it (known until now)."""
        retired = []
        for unit in units:
            if unit.retired:
                if unit.id in self._units:
                    retired.append(unit.id)
                self.forget(unit.id)
                continue
            live = self._units.get(unit.id)
            if live is None:
                live = self._units[unit.id] = NodeLive(status="unknown")
                seen = self._unknown_seen.pop(unit.id, None)
                if seen is not None and time.monotonic() - seen[1] < self.timeout:
                    live.session, live.last_heard, live.status = seen[0], seen[1], "online"
                    live.last_seen_ms = p.now_ms()
            live.groups = ["all", *unit.zones]
            live.name = unit.name
            if unit.volume is not None:
                live.volume = unit.volume
            if unit.alarm and not live.alarm:  # raised before a restart: its clearing counts from now
                live.alarm, live.alarm_at = unit.alarm, time.monotonic()
        return retired

    def alarm_cleared(self, node_id: str) -> None:
        """Another controller cleared the unit's alarm (and recorded it): drop it here too."""
        live = self._units.get(node_id)
        if live is not None and live.alarm:
            live.alarm, live.alarm_at = "", 0.0
            live.switches.clear()

    def forget(self, node_id: str) -> None:
        """A retired unit: from now on its messages are those of an unknown id (ignored)."""
        self._units.pop(node_id, None)
        self._unknown_seen.pop(node_id, None)

    def provision(self, node_id: str, groups: list[str] | None = None) -> None:
        """Know a unit without the database (tests, tools); :meth:`load` is the normal way."""
        live = self._units.setdefault(node_id, NodeLive())
        live.groups = ["all", *sorted(groups or [])]

    def add_listener(self, fn: Callable[[str, bool], None]) -> None:
        """``fn(node_id, online)`` on every online/offline change, and ``fn(node_id, True)`` when a
        unit seen online publishes a new birth: it reconnected (to another broker node, say) before
        anyone saw it offline, and what was sent to it meanwhile was lost (docs/protocol.md §1)."""
        self._listeners.append(fn)

    def is_online(self, node_id: str) -> bool:
        live = self._units.get(node_id)
        return bool(self.link.connected and live is not None and live.status == "online")

    def status(self, node_id: str) -> str:
        """online | offline | shutdown | unknown (unknown also while our broker link is down)."""
        live = self._units.get(node_id)
        if live is None or not self.link.connected:
            return "unknown"
        return live.status

    # ------------------------------------------------------------------ questions

    def online_count(self) -> int:
        """How many units are online now (O(units): asked every few seconds, not per message)."""
        if not self.link.connected:
            return 0
        return sum(1 for live in self._units.values() if live.status == "online")

    def knows(self, node_id: str) -> bool:
        """The unit is provisioned (and not retired)."""
        return node_id in self._units

    def node_ids(self) -> list[str]:
        """Every provisioned unit, in id order."""
        return sorted(self._units)

    def members(self, zone: str) -> list[str]:
        """Units of a zone (``all`` = every unit), in id order."""
        return sorted(n for n, live in self._units.items() if zone == "all" or zone in live.groups)

    def groups_of(self, node_id: str) -> list[str]:
        """The unit's groups (``all`` first, then its zones); empty for an unknown unit."""
        live = self._units.get(node_id)
        return list(live.groups) if live is not None else []

    def unknown_count(self) -> int:
        """How many ids not provisioned have sent messages (ignored) since the start."""
        return len(self.unknown_ids)

    def view(self, node_id: str) -> UnitView | None:
        """A snapshot of the unit, or None if it is not provisioned."""
        live = self._units.get(node_id)
        if live is None:
            return None
        return UnitView(self.status(node_id), live.alarm, live.session, live.last_seen_ms, live.telemetry,
                        tuple(live.groups), live.board)

    def telemetry_of(self, node_id: str) -> Mapping[str, Any]:
        """The unit's latest telemetry (with the effects of commands it confirmed); empty if none."""
        live = self._units.get(node_id)
        return live.telemetry if live is not None else {}

    # ------------------------------------------------------------------ what others tell us

    def confirmed(self, node_id: str, changes: Mapping[str, Any]) -> None:
        """A unit confirmed a command (controller/fleet/commands.py): show its effect at once."""
        live = self._units.get(node_id)
        if live is not None and changes:
            live.telemetry = {**live.telemetry, **changes}

    def desired_volume(self, node_id: str) -> int | None:
        live = self._units.get(node_id)
        return live.volume if live is not None else None

    def set_desired_volume(self, node_id: str, volume: int) -> bool:
        """Keep ``volume`` for the unit's retained config; True if it changed."""
        live = self._units.get(node_id)
        if live is None or live.volume == volume:
            return False
        live.volume = volume
        return True

    def clear_alarm(self, node_id: str, detail: str) -> str:
        """Clear the unit's alarm (an operator's decision, or :data:`DUP_CLEAR_S` without a second
        unit): recorded as an ``alarm_cleared`` event. The alarm cleared, or "" if there was none."""
        live = self._units.get(node_id)
        if live is None or not live.alarm:
            return ""
        was, live.alarm, live.alarm_at = live.alarm, "", 0.0
        live.switches.clear()  # counted afresh: raised again after DUP_SWITCHES returns
        logger.warning("node %s: alarm %s cleared (%s)", node_id, was, detail)
        at, text = p.now_ms(), f"{was}: {detail}"[:500]

        def op(s: Session) -> None:
            s.add(NodeEvent(node_id=node_id, kind="alarm_cleared", detail=text, at=at))
            node = s.get(Node, node_id)
            if node is not None and node.alarm == was:
                node.alarm = ""
                s.add(node)

        self.writer.submit(op)
        return was

    def mark_unknown(self, node_id: str, detail: str) -> None:
        """Nothing can be said of the unit now (its serial gateway is down): status ``unknown``,
        recorded as an event and told to the listeners like any change."""
        live = self._units.get(node_id)
        if live is not None and live.status != "unknown":
            self._set(node_id, live, "unknown", detail)

    async def publish_configs(self, node_ids: list[str] | None = None) -> None:
        """Publish each node's retained config (its groups); after every reconnect too."""
        if not self.link.connected:
            return
        for node_id in node_ids or list(self._units):
            live = self._units[node_id]
            cfg = p.NodeConfig(node_id=node_id, name=live.name, groups=live.groups, volume=live.volume,
                               attention=self.attention)
            self.link.publish_nowait(self.link.topics.config(node_id), p.encode(cfg), retain=True)

    # ------------------------------------------------------------------ inbound

    def _known(self, node_id: str, session: str = "", alive: bool | None = None) -> NodeLive | None:
        """The node's live record, or None (counted) for an id that is not provisioned.

        ``alive`` True/False remembers/forgets an unknown id's presence, so that a unit that
        is already connected when staff add it shows online at once."""
        live = self._units.get(node_id)
        if live is None:
            if alive and (node_id in self._unknown_seen or len(self._unknown_seen) < 10_000):
                self._unknown_seen[node_id] = (session, time.monotonic())
            elif alive is False:
                self._unknown_seen.pop(node_id, None)
            self.unknown_ids[node_id] = self.unknown_ids.get(node_id, 0) + 1
            if self.unknown_ids[node_id] == 1:
                logger.warning("message from unknown node %r ignored (not provisioned)", node_id)
        return live

    def _on_state(self, node_id: str, msg: p.NodeState) -> None:
        live = self._known(node_id, msg.session, msg.status == p.NodeStatus.ONLINE)
        if live is None:
            return
        if msg.status == p.NodeStatus.ONLINE:
            self._note_session(node_id, live, msg.session)
            # the retained birth again (our own resubscription) is the same message: not a reconnect
            reconnected = live.status == "online" and live.birth_ts not in (0, msg.ts)
            live.session, live.birth_ts = msg.session, msg.ts
            live.last_heard = time.monotonic()
            live.last_seen_ms = p.now_ms()
            live.board = (msg.hw, msg.fw)  # shown at once; stored with the next change of status
            self._set(node_id, live, "online", f"{msg.hw} fw {msg.fw}".strip(), fw=msg.fw, hw=msg.hw)
            if reconnected:
                logger.info("node %s reconnected (a new birth while online)", node_id)
                self._tell(node_id, True)
        elif msg.session in ("", live.session) or live.status != "online":
            # a will/shutdown from an older session must not mark the current one offline
            self._set(node_id, live, msg.status.value, msg.reason)

    def _on_heartbeat(self, node_id: str, msg: p.Heartbeat) -> None:
        live = self._known(node_id, msg.session, True)
        if live is None or (live.status == "shutdown" and msg.session == live.session):
            return  # (a late heartbeat of the session that shut down cleanly: it stays shut down)
        if live.session and msg.session != live.session:
            self._note_session(node_id, live, msg.session)
        live.session = msg.session
        live.last_heard = time.monotonic()
        live.last_seen_ms = p.now_ms()
        if live.status != "online":
            self._set(node_id, live, "online", "heartbeat")

    def _on_telemetry(self, node_id: str, msg: p.Telemetry) -> None:
        live = self._known(node_id)
        if live is None:
            return
        live.telemetry = msg.model_dump(exclude={"v", "node_id"})
        live.last_heard = time.monotonic()
        # a bulk row: a batch's telemetry is one UPDATE (the latest per unit), not a lookup each
        self.writer.submit_row(write_telemetry, (node_id, live.telemetry, p.now_ms()))

    def _note_session(self, node_id: str, live: NodeLive, session: str) -> None:
        if not live.session or session == live.session:
            return
        # A rebooting unit (even a crash loop) always comes back with a new session; two units
        # with one id keep returning to sessions seen before. Only returns count.
        returning = session in live.sessions
        live.sessions.append(live.session)
        if not returning:
            return
        now = time.monotonic()
        live.switches.append(now)
        recent = [t for t in live.switches if now - t <= DUP_WINDOW_S]
        if len(recent) >= DUP_SWITCHES and now - live.alarm_at > DUP_QUIET_S:
            live.alarm = "duplicate_id"
            live.alarm_at = now
            detail = f"{len(recent)} session changes in {DUP_WINDOW_S:.0f} s: two units use id {node_id}"
            logger.error("node %s: %s", node_id, detail)
            self._record(node_id, "duplicate_id", detail, alarm="duplicate_id")

    # ------------------------------------------------------------------ changes

    def _set(self, node_id: str, live: NodeLive, status: str, detail: str, *, fw: str | None = None,
             hw: str | None = None) -> None:
        if live.status == status:
            return
        was_online = live.status == "online"
        live.status = status
        logger.info("node %s is %s (%s)", node_id, status, detail)
        self._record(node_id, status, detail, status=status, session=live.session, fw=fw, hw=hw)
        if was_online != (status == "online"):
            self._tell(node_id, status == "online")

    def _tell(self, node_id: str, online: bool) -> None:
        for fn in self._listeners:
            try:
                fn(node_id, online)
            except Exception:
                logger.exception("presence listener failed")

    def _record(self, node_id: str, kind: str, detail: str, **fields: Any) -> None:
        """An event of the unit, and its row's ``fields`` (a retired unit stays retired): a bulk row."""
        change = PresenceChange(node_id, kind, detail, p.now_ms(), tuple(fields.items()))
        self.writer.submit_row(write_changes, change)

    # ------------------------------------------------------------------ timeouts

    def start(self) -> None:
        self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()

    def check_timeouts(self) -> None:
        now = time.monotonic()
        for node_id, live in list(self._units.items()):
            if live.alarm == "duplicate_id" and now - max(live.alarm_at, *live.switches, 0.0) > DUP_CLEAR_S:
                self.clear_alarm(node_id, f"no second unit seen for {DUP_CLEAR_S:.0f} s")
        if not self.link.connected:
            return
        for node_id, live in self._units.items():
            if live.status == "online" and now - live.last_heard > self.timeout:
                self._set(node_id, live, "offline", f"silent for {self.timeout:.0f} s")
