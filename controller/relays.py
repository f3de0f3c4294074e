"""Relay sessions (tiếp sóng), now or at a set time, held in the per-zone arbiter.

A :class:`RelaySession` holds its zones like a live session (:meth:`AirControl.hold`): an
emergency relay pre-empts what plays, a normal one waits for bulletins, and an emergency
arriving ends a normal relay (``preempted``). When the arbiter starts it, the units are told
``play_stream`` (mode ``node_fetch``: each unit fetches the URL itself); at its end (DELETE,
``duration_s`` elapsed, pre-empted) they are told ``stop`` and the zones are released.

A scheduled start (``start_at``) and the end after ``duration_s`` are plain asyncio timers in
this process: they are **not persisted** — a controller restart forgets pending relays.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.aircontrol import AirControl, LiveHold
from controller.presence import Presence
from devices import protocol as p
from devices.link import ControllerLink
from devices.mqtt import MqttError

logger = logging.getLogger(__name__)

KEEP_ENDED = 50  # ended sessions still listed by GET /api/relays
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
    _timers: list[asyncio.TimerHandle] = field(default_factory=list)
    _sent: dict[str, float] = field(default_factory=dict)  # unit → loop time of its last play_stream

    def public(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None
        return {"id": self.id, "url": self.url, "mode": self.mode, "state": self.state,
                "reason": self.reason, "user": self.user, "priority": self.priority.value,
                "nodes": self.nodes, "start_at": iso(self.start_at), "duration_s": self.duration_s,
                "started_at": iso(self.started_at), "ended_at": iso(self.ended_at), **self.detail}


class RelayHub:
    """The controller's relay sessions."""

    def __init__(self, link: ControllerLink, air: AirControl, presence: Presence) -> None:
        self.link = link
        self.air = air
        self.presence = presence
        self.sessions: dict[str, RelaySession] = {}
        self._cmd_seq = 0
        self._watch: asyncio.Task[None] | None = None

    def create(self, *, user: str, url: str, mode: str, priority: p.Priority, nodes: list[str],
               scopes: list[p.AudioScope], start_at: datetime | None,
               duration_s: float | None) -> RelaySession:
        sid = f"relay-{datetime.now(tz=UTC):%H%M%S}-{secrets.token_hex(3)}"
        s = RelaySession(sid, user, url, mode, priority, nodes, scopes, start_at, duration_s)
        self.sessions[sid] = s
        self._trim()
        loop = asyncio.get_running_loop()
        delay = (start_at - datetime.now(tz=UTC)).total_seconds() if start_at else 0.0
        if delay > 0:
            s._timers.append(loop.call_later(delay, self._begin, s))
            logger.info("relay %s of %s scheduled in %.0f s", sid, url, delay)
        else:
            self._begin(s)
        return s

    def units(self, s: RelaySession) -> list[str]:
        """Units whose telemetry says they relay a stream now."""
        out = []
        for n in s.nodes:
            live = self.presence.nodes.get(n)
            if live is not None and live.telemetry.get("relay") == "playing":
                out.append(n)
        return out

    def end(self, s: RelaySession, reason: str) -> None:
        """Stop the relay on its units and free its zones (idempotent)."""
        if s.state == "ended":
            return
        was_on = s.state in ("playing", "interrupted")
        for t in s._timers:
            t.cancel()
        s._timers.clear()
        s.state, s.reason, s.ended_at = "ended", reason, datetime.now(tz=UTC)
        if was_on:
            self._on_stop(s)
        self.air.release(s.id)
        logger.info("relay %s of %s ended (%s)", s.id, s.url, reason)

    def close(self) -> None:
        """Controller shutdown: end every relay (scheduled ones are forgotten)."""
        for s in list(self.sessions.values()):
            self.end(s, "shutdown")

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
        self.air.hold(s.id, s.nodes, s.priority, LiveHold(started=lambda: self._started(s),
                                                          ended=lambda why: self.end(s, why)))

    def _started(self, s: RelaySession) -> None:
        if s.state != "waiting":
            return
        s.state, s.started_at = "playing", datetime.now(tz=UTC)
        if s.duration_s:
            s._timers.append(asyncio.get_running_loop().call_later(s.duration_s, self.end, s, "finished"))
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
        body = p.encode(p.Command(id=f"{name}:{s.id}:{self._cmd_seq}", name=name, args=args,
                                  expires_at=p.now_ms() + 10_000))
        for scope in s.scopes if scopes is None else scopes:
            topic = (self.link.topics.group_cmd(scope.id) if scope.kind == "group"
                     else self.link.topics.cmd(scope.id))
            try:
                self.link.publish_nowait(topic, body, qos=1)
            except MqttError as exc:
                logger.error("%s for %s not sent to %s: %s", name, s.id, scope.id, exc)
