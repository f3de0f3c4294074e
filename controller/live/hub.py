"""Live broadcasts (phát trực tiếp): microphone audio from a phone to the units, as it is spoken.

A :class:`LiveSession` is held in the per-zone arbiter like a broadcast of unknown length
(:meth:`controller.airing.aircontrol.AirControl.hold`): an emergency session pre-empts what plays, a
normal one waits for the zones (and is refused while an emergency is on air — see
:mod:`controller.api.live`). Once the arbiter starts it, the controller sends ``live_start``
to the target scopes, re-frames the PCM the phone sends into ``LIVE_FRAME_MS`` frames with a
sequence number and a capture time, and publishes them QoS0 on ``.../bcast/<session>/live``
(docs/protocol.md §Live). Stop, a dropped phone, a phone that sends nothing and a microphone
that stays silent all end the session the same way: a last frame, ``live_stop`` to every scope,
and the zones released. The units also stop on their own when frames stop coming.

A phone session (:meth:`LiveHub.open`) is reported to the hub's :class:`LiveObserver` (the broadcast
log and audio archive, :mod:`controller.live.log`); a session opened with :meth:`LiveHub.open_direct`
(a republished relay, logged as a relay) is not.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from controller.airing.aircontrol import AirControl, LiveHold
from controller.airing.custody import Custody
from controller.airing.ownership import Ownership
from controller.fleet.presence import Presence
from controller.live.lease import CONTROLLER_LOST, end_orphan, stop_units
from controller.live.session import LiveObserver, LiveSession
from devices import protocol as p
from devices.link import ReplyHandler, UnitBus
from devices.mqtt import MqttError

logger = logging.getLogger(__name__)

NO_AUDIO_S = 3.0  # the phone is connected but sends nothing
SILENCE_S = 60.0  # the microphone sends only silence


class LiveHub:
    """The controller's live sessions (at most one per zone, by way of the arbiter)."""

    def __init__(self, link: UnitBus, air: AirControl, presence: Presence, *,
                 no_audio_s: float = NO_AUDIO_S, silence_s: float = SILENCE_S,
                 observer: LiveObserver | None = None, lease: Ownership | None = None,
                 renew_s: float = 2.0) -> None:
        self.link = link
        self.observer = observer
        self.air = air
        self.presence = presence
        self.no_audio_s = no_audio_s
        self.silence_s = silence_s
        self.sessions: dict[str, LiveSession] = {}
        self._watch: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        #: the live_owner leases (controller/live/lease.py): ours renewed, a dead owner's sessions ended
        self.lease = lease
        self.custody = None if lease is None else Custody(
            lease, self.sessions.keys, adopt=self._end_orphan, abandon=self._lost_lease, renew_s=renew_s,
            name="live")

    async def start(self) -> None:
        if self.custody is not None:
            await self.custody.start()

    async def stop(self) -> None:
        self.close()
        if self.custody is not None:
            await self.custody.stop(release=False)  # (ended "shutdown": their leases went with them)

    async def _end_orphan(self, session_id: str) -> bool:
        """A session whose lease we took: its owner is gone (or it was ours before a restart)."""
        if session_id in self.sessions or self.lease is None:
            return session_id in self.sessions
        nodes = await asyncio.to_thread(end_orphan, self.lease.engine, self.lease, session_id)
        stop_units(self.link, session_id, nodes)
        return True

    def _lost_lease(self, session_id: str, why: str) -> None:
        """Our lease is gone (the database or the broker lost, or taken): the session cannot go on."""
        s = self.sessions.get(session_id)
        if s is not None:
            logger.error("live session %s cannot go on: %s", session_id, why)
            self.end(s, CONTROLLER_LOST)

    def _spawn_sql(self, fn: Callable[..., Any], *args: Any) -> None:
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(fn, *args))
        self._bg.add(task)
        task.add_done_callback(self._sql_done)

    def _sql_done(self, task: asyncio.Task[Any]) -> None:
        self._bg.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("live lease not written (%s): it expires", task.exception())

    def open(self, *, user: str, priority: p.Priority, nodes: list[str], scopes: list[p.AudioScope],
             notify: Callable[[dict[str, Any]], None], target: dict[str, Any] | None = None) -> LiveSession:
        sid = f"live-{datetime.now(tz=UTC):%H%M%S}-{secrets.token_hex(3)}"
        s = LiveSession(sid, user, priority, nodes, scopes, notify, target=dict(target or {}),
                        observer=self.observer)
        self.sessions[sid] = s
        s.observe("on_open")
        if self.lease is not None:
            self._spawn_sql(self.lease.take, sid)  # renewed with the others from then on
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._watchdog(), name="live-watchdog")
        notify({"type": "state", **s.public()})
        self.air.hold(sid, nodes, priority, LiveHold(started=lambda: self._started(s),
                                                      ended=lambda why: self._ended_by_arbiter(s, why)))
        return s

    def open_direct(self, *, user: str, priority: p.Priority, nodes: list[str], scopes: list[p.AudioScope],
                    notify: Callable[[dict[str, Any]], None]) -> LiveSession:
        """A session on air at once: its caller already holds the zones (a republished relay)."""
        sid = f"live-{datetime.now(tz=UTC):%H%M%S}-{secrets.token_hex(3)}"
        s = LiveSession(sid, user, priority, nodes, scopes, notify)
        self.sessions[sid] = s
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._watchdog(), name="live-watchdog")
        self._started(s)
        return s

    def on_air(self) -> list[LiveSession]:
        """The sessions on air now (state ``live``; not those waiting for their zones)."""
        return [s for s in self.sessions.values() if s.state == "live"]

    def units(self, s: LiveSession) -> list[str]:
        """Units whose telemetry says they play this session."""
        out = []
        for n in s.nodes:
            t = self.presence.telemetry_of(n)
            if t.get("source") == "live" and t.get("playing") == s.id:
                out.append(n)
        return out

    def feed(self, s: LiveSession, pcm: bytes) -> None:
        """PCM s16le 16 kHz mono from the phone, any length: framed and published while live."""
        now = asyncio.get_running_loop().time()
        if not s.hear(pcm, now):
            return
        if s.resuming(now):
            self._announce(s)  # units gave up on a silent session: tell them before the audio
        for frame in s.frames(now):
            self._publish_frame(s, frame)

    def end(self, s: LiveSession, reason: str) -> None:
        """End the session on every unit (idempotent)."""
        if s.state == "ended":
            return
        was_live = s.state == "live"
        s.state, s.reason = "ended", reason
        self.sessions.pop(s.id, None)
        if was_live:
            self._publish_frame(s, s.tail(), last=True)
            self._command(s, "live_stop", {"session": s.id, "reason": reason[:64]})
        self.air.release(s.id)
        s.observe("on_end")
        if self.lease is not None:
            self._spawn_sql(self.lease.release, s.id)
        logger.info("live %s by %s ended (%s): %d frames to %d unit(s)", s.id, s.user, reason,
                    s.stats.frames_out, len(s.nodes))
        s.notify({"type": "state", **s.public()})

    def close(self) -> None:
        """At shutdown, before the writer stops: every open session ends ``shutdown`` (recorded
        through the observer), not left to a WebSocket handler that may run after the writer."""
        for s in list(self.sessions.values()):
            self.end(s, "shutdown")

    # ------------------------------------------------------------------ internals

    def _started(self, s: LiveSession) -> None:
        if s.state != "waiting":
            return
        s.go_live(asyncio.get_running_loop().time())
        self._announce(s)
        s.observe("on_live")
        logger.info("live %s by %s on air in %d scope(s)", s.id, s.user, len(s.scopes))
        s.notify({"type": "state", **s.public()})

    def _ended_by_arbiter(self, s: LiveSession, why: str) -> None:
        self.end(s, why)  # pre-empted by an emergency, or the zone was cleared by staff

    def _publish_frame(self, s: LiveSession, pcm: bytes, *, last: bool = False) -> None:
        body = p.pack_live_frame(s.seq, p.now_ms(), pcm, last=last)
        s.seq += 1
        for scope in s.scopes:
            try:
                self.link.publish_nowait(self.link.topics.live(scope, s.id), body, qos=0)
            except MqttError as exc:
                s.stats.publish_errors += 1
                logger.debug("live frame not sent to %s: %s", scope.id, exc)
        s.stats.frames_out += 1
        if s.observer is not None:
            s.observe("on_frame", pcm)

    def _announce(self, s: LiveSession) -> None:
        s.announced(asyncio.get_running_loop().time())
        args = p.LiveStartArgs(session=s.id, priority=s.priority)
        self._command(s, "live_start", args.model_dump(mode="json"), on_reply=s.refusal)

    def _command(self, s: LiveSession, name: str, args: dict[str, Any],
                 on_reply: ReplyHandler | None = None) -> None:
        """To every scope of the session (a scope it misses stops on its own when frames stop)."""
        self.link.command(s.scopes, name, args, expires_at=p.now_ms() + 10_000, on_reply=on_reply)

    async def _watchdog(self) -> None:
        while self.sessions:
            await asyncio.sleep(0.25)
            now = asyncio.get_running_loop().time()
            for s in list(self.sessions.values()):
                try:
                    if s.state != "live":
                        continue
                    why = s.quiet_reason(now, self.no_audio_s, self.silence_s)
                    if why is not None:
                        self.end(s, why)
                    else:
                        if s.reannounce_due(now):
                            self._announce(s)  # while audio flows (feed() announces when it resumes)
                        s.notify({"type": "units", "session": s.id, "live": self.units(s),
                                  "refused": dict(s.refused), "level_dbfs": round(s.level_dbfs, 1)})
                except Exception:
                    logger.exception("live watchdog failed for %s", s.id)
