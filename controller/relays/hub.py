"""Relay sessions (tiếp sóng), now or at a set time, held in the per-zone arbiter.

A :class:`RelaySession` holds its zones like a live session (:meth:`AirControl.hold`): an
emergency relay pre-empts what plays, a normal one waits for bulletins, and an emergency
arriving ends a normal relay (``preempted``). When the arbiter starts it, the units are told
``play_stream`` (mode ``node_fetch``: each unit fetches the URL itself); at its end (DELETE,
``duration_s`` elapsed, pre-empted) they are told ``stop`` and the zones are released.

Every relay is a row of the ``relay`` table (controller/relay_store.py), written before the API
answers and kept up to date. The start (``start_at``) and the end are timers in this process,
re-armed from the rows when the controller starts (:meth:`RelayHub.restore`): a relay that was
waiting or on air is put back on air, one whose window passed while the controller was down is
ended with the reason. A relay with ``start_at`` ends at ``start_at + duration_s`` (the window
of the programme relayed, even if it had to wait for the zones); one started at once ends
``duration_s`` after it went on air. Relays fired by a schedule (scheduler/firing.py) arrive
through :meth:`RelayHub.adopt`. A controller shutting down stops the units but leaves the rows
as they are, so the relay carries on when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from controller.airing.aircontrol import AirControl, LiveHold
from controller.core.background import Periodic
from controller.core.db import Database
from controller.core.writer import DbWriter
from controller.fleet.presence import Presence
from controller.relays import store
from controller.relays.models import Relay
from devices import protocol as p
from devices.link import ControllerLink
from devices.mqtt import MqttError

logger = logging.getLogger(__name__)

KEEP_ENDED = 50  # ended sessions kept in memory (older ones are read from the database)
SAVE_S = 2.0  # how often a changed state (e.g. interrupted) is written
RESEND_S = 10.0  # node_fetch: play_stream again to an online unit that reports no relay
RESEND_S = 10.0  # node_fetch: play_stream again to an online unit that reports no relay


@dataclass
class RelaySession:
    id: str
    user: str
    url: str
    mode: str  # node_fetch | republish
    priority: p.Priority
    nodes: list[str]
    scopes: list[p.AudioScope]
    start_at: datetime | None
    duration_s: float | None
    state: str = "scheduled"  # scheduled | waiting | playing | interrupted | ended
    reason: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # mode-specific figures (republish)
    target: dict[str, Any] = field(default_factory=dict)
    schedule_id: int | None = None
    _saved: tuple[str, str] = ("", "")
    _timers: list[asyncio.TimerHandle] = field(default_factory=list)
    _sent: dict[str, float] = field(default_factory=dict)  # unit → loop time of its last play_stream

    def public(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None
        return {"id": self.id, "url": self.url, "mode": self.mode, "state": self.state,
                "reason": self.reason, "user": self.user, "priority": self.priority.value,
                "nodes": self.nodes, "start_at": iso(self.start_at), "duration_s": self.duration_s,
                "started_at": iso(self.started_at), "ended_at": iso(self.ended_at),
                "schedule_id": self.schedule_id, **self.detail}

    def end_at(self) -> datetime | None:
        """When the relay ends by itself: its window end, or duration_s after it went on air."""
        if not self.duration_s:
            return None
        base = self.start_at or self.started_at
        return base + timedelta(seconds=self.duration_s) if base else None

    def row(self, owner: str) -> Relay:
        return Relay(id=self.id, url=self.url, mode=self.mode, priority=self.priority.value, nodes=self.nodes,
                     scopes=[x.model_dump(mode="json") for x in self.scopes], target=self.target,
                     start_at=store.ms(self.start_at), duration_s=self.duration_s, state=self.state,
                     reason=self.reason, started_at=store.ms(self.started_at),
                     ended_at=store.ms(self.ended_at),
                     owner=owner, created_by=self.user, schedule_id=self.schedule_id, detail=self.detail)

    @classmethod
    def from_row(cls, row: Relay) -> RelaySession:
        return cls(row.id, row.created_by, row.url, row.mode, p.Priority(row.priority), list(row.nodes),
                   store.scopes_of(row), store.dt(row.start_at), row.duration_s, state=row.state,
                   reason=row.reason, started_at=store.dt(row.started_at), detail=dict(row.detail),
                   target=dict(row.target), schedule_id=row.schedule_id)


class RelayHub:
    """The controller's relay sessions."""

    def __init__(self, link: ControllerLink, air: AirControl, presence: Presence, *,
                 db: Database | None = None, writer: DbWriter | None = None, owner: str = "",
                 beat_s: float = 10.0, owner_ttl_s: float = 45.0) -> None:
        self.link = link
        self.air = air
        self.presence = presence
        self.db = db
        self.writer = writer
        self.owner = owner or link.client_id
        self.sessions: dict[str, RelaySession] = {}
        self._cmd_seq = 0
        self._watch: asyncio.Task[None] | None = None
        self._saver: asyncio.Task[None] | None = None
        self._closing = False
        self.owner_ttl_s = owner_ttl_s
        self._owner_round = Periodic("relay-owner", beat_s, self._ownership)
        link.on_connect(self._link_up)
        link.on("resp", self._on_resp)

    def _on_resp(self, node_id: str, resp: p.CommandResponse) -> None:
        """A unit's answer to our play_stream: a refusal (e.g. ``power_off``) is shown per unit."""
        parts = resp.id.split(":")
        if len(parts) != 4 or parts[0] != "relay" or parts[2] != "play_stream":
            return
        s = self.sessions.get(parts[1])
        if s is None or node_id not in s.nodes:
            return
        refused: dict[str, str] = s.detail.setdefault("units_refused", {})
        if resp.status == "error":
            refused[node_id] = resp.error[:100]
        else:
            refused.pop(node_id, None)

    def _link_up(self) -> None:
        """(Re)connected to the broker: commands sent while it was away are lost, so repeat them."""
        for s in list(self.sessions.values()):
            if s.state in ("playing", "interrupted") and s.mode == "node_fetch":
                self._command(s, "play_stream", {"url": s.url})

    async def create(self, *, user: str, url: str, mode: str, priority: p.Priority, nodes: list[str],
                     scopes: list[p.AudioScope], start_at: datetime | None, duration_s: float | None,
                     target: dict[str, Any] | None = None) -> RelaySession:
        """A new relay, written to the database before it is armed (raises if it cannot be)."""
        sid = f"relay-{datetime.now(tz=UTC):%H%M%S}-{secrets.token_hex(3)}"
        s = RelaySession(sid, user, url, mode, priority, nodes, scopes, start_at, duration_s,
                         target=dict(target or {}))
        if self.db is not None:
            row = s.row(self.owner)
            row.owner_seen_at = p.now_ms()
            await asyncio.to_thread(self._insert, row)
        s._saved = (s.state, s.reason)
        self.sessions[sid] = s
        self._trim()
        self._arm(s)
        return s

    def _insert(self, row: Relay) -> None:
        assert self.db is not None
        with self.db.session() as db:
            store.insert(db, row)

    async def restore(self) -> int:
        """Controller start: re-arm this controller's relays that have not ended, and from then on
        mark them as run here and take over those another controller stopped marking."""
        if self.db is None:
            return 0
        self._owner_round.start()

        def rows() -> list[Relay]:
            assert self.db is not None
            with self.db.session() as db:
                return store.active_of(db, self.owner)

        found = await asyncio.to_thread(rows)
        for row in found:
            if row.id not in self.sessions:
                self._take(RelaySession.from_row(row), restored=True)
        if found:
            logger.info("%d relay(s) picked up from the database", len(found))
        return len(found)

    async def _ownership(self) -> None:
        """One round: mark ours; drop those taken over from us; claim relays left by others."""
        recent = datetime.now(tz=UTC) - timedelta(seconds=self.owner_ttl_s)
        # ended ones too for a while: their "ended" may not be written yet, and must not look abandoned
        mine = [k for k, v in self.sessions.items() if v.state != "ended" or (v.ended_at or recent) > recent]
        ttl_ms = int(self.owner_ttl_s * 1000)

        def work() -> tuple[list[str], list[Relay]]:
            assert self.db is not None
            now = p.now_ms()
            with self.db.session() as db:
                lost = store.beat(db, self.owner, mine, now)
                taken = [row for row in store.orphans(db, self.owner, now, ttl_ms)
                         if row.id not in self.sessions and store.claim(db, row, self.owner, now)]
                return lost, taken

        try:
            lost, taken = await asyncio.to_thread(work)
        except SQLAlchemyError as exc:
            logger.warning("relay ownership round failed (database): %s", str(exc).splitlines()[0])
            return
        for rid in lost:
            if self.sessions.get(rid) is not None and self.sessions[rid].state != "ended":
                self._lost(rid)
        for row in taken:
            logger.warning("relay %s taken over from controller %r (not seen for %.0f s or more)", row.id,
                           row.owner, self.owner_ttl_s)
            s = RelaySession.from_row(row)
            s.detail["taken_over"] = s.detail.get("taken_over", 0) + 1
            self._take(s, restored=True)

    def _lost(self, relay_id: str) -> None:
        """Another controller took this relay over (we looked dead to it): stop running it here
        without telling the units, which the new owner now commands."""
        s = self.sessions.pop(relay_id, None)
        if s is None or s.state == "ended":
            return
        logger.error("relay %s was taken over by another controller; no longer run here", relay_id)
        for t in s._timers:
            t.cancel()
        s._timers.clear()
        was_on = s.state in ("playing", "interrupted")
        s.state, s.reason = "ended", "taken over by another controller"
        if was_on and s.mode == "republish":
            self._on_stop(s)  # our own pull and frames stop (the units follow the new owner's)
        self.air.release(s.id)

    def adopt(self, relay_id: str) -> None:
        """A relay row written elsewhere for this controller (a schedule slot): load and arm it."""
        asyncio.get_running_loop().create_task(self._adopt(relay_id), name=f"adopt-{relay_id}")

    async def _adopt(self, relay_id: str) -> None:
        if self.db is None or relay_id in self.sessions:
            return

        def get() -> Relay | None:
            assert self.db is not None
            with self.db.session() as db:
                return store.load(db, relay_id)

        row = await asyncio.to_thread(get)
        if row is None or row.owner != self.owner or row.state not in store.ACTIVE:
            logger.warning("relay %s not taken: %s", relay_id, "not found" if row is None else
                           f"owner {row.owner!r}, state {row.state}")
            return
        if relay_id not in self.sessions:
            self._take(RelaySession.from_row(row), restored=False)

    def _take(self, s: RelaySession, *, restored: bool) -> None:
        s._saved = (s.state, s.reason)
        due = s.start_at is None or s.start_at <= datetime.now(tz=UTC)
        if restored and (s.state != "scheduled" or due):
            s.state = "scheduled"  # put back on air through the arbiter
            s.detail["restored"] = s.detail.get("restored", 0) + 1
        self.sessions[s.id] = s
        self._trim()
        self._arm(s)

    def _arm(self, s: RelaySession) -> None:
        now = datetime.now(tz=UTC)
        end = s.end_at()
        if end is not None and end <= now:
            why = ("missed: its time window passed while the controller was not running"
                   if s.started_at is None else "finished")
            self.end(s, why, at=end if s.started_at else None)
            return
        loop = asyncio.get_running_loop()
        delay = (s.start_at - now).total_seconds() if s.start_at else 0.0
        if end is not None and s.start_at is not None:  # a window: it ends on time, played or not
            s._timers.append(loop.call_later((end - now).total_seconds(), self._window_over, s))
        if delay > 0:
            s._timers.append(loop.call_later(delay, self._begin, s))
            logger.info("relay %s of %s scheduled in %.0f s", s.id, s.url, delay)
        else:
            self._begin(s)
        if self._saver is None or self._saver.done():
            self._saver = loop.create_task(self._save_loop(), name="relay-save")

    def _window_over(self, s: RelaySession) -> None:
        self.end(s, "finished" if s.started_at else "not aired: the zones were busy for its whole window")

    def units(self, s: RelaySession, state: str = "playing") -> list[str]:
        """Units whose telemetry says their relay is in ``state`` (playing, interrupted, refused)."""
        out = []
        for n in s.nodes:
            live = self.presence.nodes.get(n)
            if live is not None and live.telemetry.get("relay") == state:
                out.append(n)
        return out

    def describe(self, s: RelaySession) -> dict[str, Any]:
        """The API's view of a session this controller runs (with the units' own relay states)."""
        fetch = s.mode == "node_fetch" and s.state != "ended"
        return {**s.public(), "owner": self.owner,
                "units_playing": self.units(s) if fetch else [],
                "units_interrupted": self.units(s, "interrupted") if fetch else [],
                "units_refused": self.refusals(s, fetch)}

    def refusals(self, s: RelaySession, fetch: bool) -> dict[str, str]:
        """Unit → why it is not relaying: its answer to play_stream (e.g. ``power_off``), or
        ``unsafe_redirect`` when its telemetry says ``relay: refused`` (node_fetch: the station led it
        to a non-public address on another origin)."""
        out: dict[str, str] = dict(s.detail.get("units_refused", {}))
        for n in self.units(s, "refused") if fetch else []:
            out.setdefault(n, "unsafe_redirect")
        return out

    def end(self, s: RelaySession, reason: str, *, at: datetime | None = None) -> None:
        """Stop the relay on its units and free its zones (idempotent)."""
        if s.state == "ended":
            return
        was_on = s.state in ("playing", "interrupted")
        for t in s._timers:
            t.cancel()
        s._timers.clear()
        s.state, s.reason, s.ended_at = "ended", reason, at or datetime.now(tz=UTC)
        if was_on:
            self._on_stop(s)
        self.air.release(s.id)
        self._save(s)  # not while closing: the row keeps the state to resume from
        logger.info("relay %s of %s ended (%s)", s.id, s.url, reason)

    async def close(self) -> None:
        """Controller shutdown: stop the units and free the zones; the rows stay as they are so the
        relays carry on when the controller is back."""
        for s in list(self.sessions.values()):
            if s.state != "ended":
                self._save(s)  # the latest state
        self._closing = True
        for s in list(self.sessions.values()):
            self.end(s, "shutdown")
        await self._owner_round.stop()
        for task in (self._watch, self._saver):
            if task is not None:
                task.cancel()

    def _save(self, s: RelaySession) -> None:
        if self.writer is None or self._closing:
            return
        s._saved = (s.state, s.reason)
        self.writer.submit(store.save_op(s.id, {
            "state": s.state, "reason": s.reason[:500], "started_at": store.ms(s.started_at),
            "ended_at": store.ms(s.ended_at), "detail": dict(s.detail)}))

    async def _save_loop(self) -> None:
        """State changes made by the modes (interrupted, resumed) reach the database too."""
        while any(s.state != "ended" for s in self.sessions.values()):
            await asyncio.sleep(SAVE_S)
            for s in list(self.sessions.values()):
                if s.state != "ended" and (s.state, s.reason) != s._saved:
                    self._save(s)

    # ------------------------------------------------------------------ hooks for modes

    def _on_play(self, s: RelaySession) -> None:
        now = asyncio.get_running_loop().time()
        s._sent = dict.fromkeys(s.nodes, now)
        self._command(s, "play_stream", {"url": s.url})
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._resend_loop(), name="relay-resend")

    def _on_stop(self, s: RelaySession) -> None:
        self._command(s, "stop", {})

    # ------------------------------------------------------------------ internals

    def _begin(self, s: RelaySession) -> None:
        if s.state != "scheduled":
            return
        s.state = "waiting"
        self._save(s)
        self.air.hold(s.id, s.nodes, s.priority, LiveHold(started=lambda: self._started(s),
                                                          ended=lambda why: self.end(s, why)))

    def _started(self, s: RelaySession) -> None:
        if s.state != "waiting":
            return
        now = datetime.now(tz=UTC)
        s.started_at = s.started_at or now.replace(microsecond=now.microsecond // 1000 * 1000)  # ms: stored
        s.state = "playing"
        end = s.end_at()
        if end is not None and s.start_at is None:  # a window has its own timer (_arm)
            left = (end - datetime.now(tz=UTC)).total_seconds()
            s._timers.append(asyncio.get_running_loop().call_later(max(0.0, left), self.end, s, "finished"))
        self._save(s)
        logger.info("relay %s of %s on air in %d scope(s)", s.id, s.url, len(s.scopes))
        self._on_play(s)

    async def _resend_loop(self) -> None:
        """A unit that (re)connects mid-relay, or missed the command, is told again."""
        while any(s.state == "playing" and s.mode == "node_fetch" for s in self.sessions.values()):
            await asyncio.sleep(1.0)
            now = asyncio.get_running_loop().time()
            for s in list(self.sessions.values()):
                if s.state != "playing" or s.mode != "node_fetch":
                    continue
                for n in s.nodes:
                    live = self.presence.nodes.get(n)
                    if (live is None or not self.presence.is_online(n) or live.telemetry.get("relay")
                            or now - s._sent.get(n, 0.0) < RESEND_S):
                        continue
                    s._sent[n] = now
                    self._command(s, "play_stream", {"url": s.url}, [p.AudioScope(kind="node", id=n)])

    def _trim(self) -> None:
        ended = [k for k, v in self.sessions.items() if v.state == "ended"]
        for k in ended[: max(0, len(ended) - KEEP_ENDED)]:
            del self.sessions[k]

    def _command(self, s: RelaySession, name: str, args: dict[str, Any],
                 scopes: list[p.AudioScope] | None = None) -> None:
        self._cmd_seq += 1
        body = p.encode(p.Command(id=f"relay:{s.id}:{name}:{self._cmd_seq}", name=name, args=args,
                                  expires_at=p.now_ms() + 10_000))
        for scope in s.scopes if scopes is None else scopes:
            topic = (self.link.topics.group_cmd(scope.id) if scope.kind == "group"
                     else self.link.topics.cmd(scope.id))
            try:
                self.link.publish_nowait(topic, body, qos=1)
            except MqttError as exc:
                logger.error("%s for %s not sent to %s: %s", name, s.id, scope.id, exc)
