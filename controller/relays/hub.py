"""Relay sessions (tiếp sóng), now or at a set time, held in the per-zone arbiter.

A :class:`RelaySession` holds its zones like a live session (:meth:`AirControl.hold`): an
emergency relay pre-empts what plays, a normal one waits for bulletins, and an emergency
arriving ends a normal relay (``preempted``). When the arbiter starts it, the units are told
``play_stream`` (mode ``node_fetch``: each unit fetches the URL itself); at its end (DELETE,
``duration_s`` elapsed, pre-empted) they are told ``stop`` and the zones are released.

Every relay is a row of the ``relay`` table (controller/relays/store.py), written before the API
answers and kept up to date. The start (``start_at``) and the end are timers in this process,
re-armed from the rows when the controller starts (:meth:`RelayHub.restore`): a relay that was
waiting or on air is put back on air, one whose window passed while the controller was down is
ended with the reason. A relay with ``start_at`` ends at ``start_at + duration_s`` (the window
of the programme relayed, even if it had to wait for the zones); one started at once ends
``duration_s`` after it went on air. Relays fired by a schedule (controller/schedules/airer.py) arrive
through :meth:`RelayHub.adopt`. A controller shutting down stops the units but leaves the rows
as they are, so the relay carries on when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from controller.accounts.audit import details, where
from controller.airing.aircontrol import AirControl, LiveHold
from controller.airing.custody import Custody
from controller.airing.ownership import Ownership
from controller.core.db import Database
from controller.core.writer import DbWriter
from controller.fleet.presence import Presence
from controller.relays import store
from controller.relays.models import Relay
from controller.relays.session import RelaySession
from devices import protocol as p
from devices.link import ReplyHandler, UnitBus

logger = logging.getLogger(__name__)

KEEP_ENDED = 50  # ended sessions kept in memory (older ones are read from the database)
SAVE_S = 2.0  # how often a changed state (e.g. interrupted) is written
RESEND_S = 10.0  # node_fetch: play_stream again to an online unit that reports no relay
STOP_RELAY = "stop_relay"  # the airing_request action: stop a relay another controller runs


class RelayHub:
    """The controller's relay sessions."""

    def __init__(self, link: UnitBus, air: AirControl, presence: Presence, *, owner: str,
                 db: Database | None = None, writer: DbWriter | None = None,
                 lease: Ownership | None = None, beat_s: float = 2.0) -> None:
        self.link = link
        self.air = air
        self.presence = presence
        self.db = db
        self.writer = writer
        self.owner = owner  # this controller's name among several (its client id)
        self.sessions: dict[str, RelaySession] = {}
        self._watch: asyncio.Task[None] | None = None
        self._saver: asyncio.Task[None] | None = None
        self._closing = False
        #: the relay_owner leases (controller/relays/lease.py): renew ours, take the orphans
        self.lease = lease
        self.custody = None if lease is None else Custody(
            lease, self._held, adopt=self._adopt_taken, abandon=self._lost_lease, renew_s=beat_s,
            name="relay")
        link.on_connect(self._link_up)

    def _held(self) -> list[str]:
        return [k for k, v in self.sessions.items() if v.state != "ended"]

    def _link_up(self) -> None:
        """(Re)connected to the broker: commands sent while it was away are lost, so repeat them."""
        for s in list(self.sessions.values()):
            if s.state in ("playing", "interrupted") and s.mode == "node_fetch":
                self._command(s, "play_stream", {"url": s.url})

    async def create(self, *, user: str, url: str, mode: str, priority: p.Priority, nodes: list[str],
                     scopes: list[p.AudioScope], start_at: datetime | None, duration_s: float | None,
                     target: dict[str, Any] | None = None) -> RelaySession:
        """A new relay, written to the database with its lease before it is armed (raises if it
        cannot be). Without the broker its lease is not taken: another controller runs it."""
        sid = f"relay-{datetime.now(tz=UTC):%H%M%S}-{secrets.token_hex(3)}"
        s = RelaySession(sid, user, url, mode, priority, nodes, scopes, start_at, duration_s,
                         target=dict(target or {}))
        ours = True
        if self.db is not None:
            ours = await asyncio.to_thread(self._insert, s.row(self.owner))
        s.mark_saved()
        if ours:
            self.sessions[sid] = s
            self._trim()
            self._arm(s)
        return s

    def _insert(self, row: Relay) -> bool:
        assert self.db is not None
        with self.db.session() as db:
            db.add(row)
            db.flush()
            ours = self.lease is None or self.lease.claim(db, row.id)  # in the relay row's transaction
            db.commit()
            return ours

    async def restore(self) -> int:
        """Controller start: take our relays back (our lease rows) and any relay whose owner is
        gone, and from then on renew ours and take the orphans (controller/airing/custody.py)."""
        if self.custody is None:
            return 0
        await self.custody.start()
        return len(self._held())

    async def _adopt_taken(self, relay_id: str) -> bool:
        """A relay whose lease we just took (ours after a restart, or a dead owner's): run it on."""
        if self.db is None:
            return False
        if relay_id in self.sessions:  # ours, just ended here (its end not written yet): not again
            return True

        row, taken_from = await asyncio.to_thread(self._take_row, relay_id)
        if row is None or row.state not in store.ACTIVE:
            return False
        if taken_from is not None:
            logger.warning("relay %s (%s) taken over from %s %.2f s after its last renewal", relay_id,
                           row.mode, taken_from or "?", row.detail.get("takeover_s") or -1.0)
        self._take(RelaySession.from_row(row), restored=True)
        return True

    def _take_row(self, relay_id: str) -> tuple[Relay | None, str | None]:
        """The relay's row, now ours; and whom it was taken from (None: it was ours already). A
        dead owner's last renewal (``owner_seen_at``) gives the takeover time on the database
        clock (``takeover_s``), recorded with the relay beside ``taken_over`` (how many times)."""
        assert self.db is not None
        with self.db.session() as db:
            row = store.load(db, relay_id)
            if row is None or row.owner == self.owner:
                return row, None
            seen = row.owner_seen_at
            now = self.lease.db_now_ms() if self.lease is not None else p.now_ms()
            taken_from = row.owner
            row.detail = {**row.detail, "taken_over": int(row.detail.get("taken_over", 0)) + 1,
                          "taken_from": taken_from,
                          "takeover_s": None if seen is None else round((now - seen) / 1000, 2)}
            row.owner, row.owner_seen_at = self.owner, now
            db.add(row)
            db.commit()
            db.refresh(row)
            return row, taken_from

    def _lost_lease(self, relay_id: str, why: str) -> None:
        """The lease is no longer ours (taken over, the database or the broker lost): stop running the
        relay here without telling the units, which its new owner commands."""
        s = self.sessions.pop(relay_id, None)
        if s is None or s.state == "ended":
            return
        logger.error("relay %s no longer run here: %s", relay_id, why)
        s.cancel_timers()
        was_on = s.state in ("playing", "interrupted")
        s.state, s.reason = "ended", why
        if was_on and s.mode == "republish":
            self._on_stop(s)  # our own pull and frames stop (the units follow the new owner's)
        self.air.release(s.id)

    def stop(self, relay_id: str, reason: str) -> bool:
        """Stop a relay this controller runs (asked here or through another controller)."""
        s = self.sessions.get(relay_id)
        if s is None or s.state == "ended":
            return False
        self.end(s, reason)
        return True

    def runs(self, relay_id: str) -> bool:
        """This controller runs the relay now (it holds its lease)."""
        s = self.sessions.get(relay_id)
        return s is not None and s.state != "ended" and (self.lease is None or self.lease.valid())

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
        if self.lease is not None and not await asyncio.to_thread(self.lease.take, relay_id):
            logger.warning("relay %s is run by another controller (its lease)", relay_id)
            return
        if relay_id not in self.sessions:
            self._take(RelaySession.from_row(row), restored=False)

    def _take(self, s: RelaySession, *, restored: bool) -> None:
        s.mark_saved()
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
            s.add_timer(loop.call_later((end - now).total_seconds(), self._window_over, s))
        if delay > 0:
            s.add_timer(loop.call_later(delay, self._begin, s))
            logger.info("relay %s of %s scheduled in %.0f s", s.id, s.url, delay)
        else:
            self._begin(s)
        if self._saver is None or self._saver.done():
            self._saver = loop.create_task(self._save_loop(), name="relay-save")

    def _window_over(self, s: RelaySession) -> None:
        self.end(s, "finished" if s.started_at else "not aired: the zones were busy for its whole window")

    def session(self, relay_id: str) -> RelaySession | None:
        """The relay if this controller runs it (or ended it recently), else None."""
        return self.sessions.get(relay_id)

    def on_air(self) -> list[RelaySession]:
        """The relays this controller has on air now (state ``playing``), oldest first."""
        return [s for s in self.sessions.values() if s.state == "playing"]

    def units(self, s: RelaySession, state: str = "playing") -> list[str]:
        """Units whose telemetry says their relay is in ``state`` (playing, interrupted, refused)."""
        return [n for n in s.nodes if self.presence.telemetry_of(n).get("relay") == state]

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
        s.cancel_timers()
        s.state, s.reason, s.ended_at = "ended", reason, at or datetime.now(tz=UTC)
        if was_on:
            self._on_stop(s)
        self.air.release(s.id)
        self._save(s)  # not while closing: the row keeps the state to resume from
        lasted = (s.ended_at - s.started_at).total_seconds() if s.started_at and s.ended_at else None
        self._audit(s, "relay_end", reason=reason, on_air=lasted is not None,
                    seconds=None if lasted is None else round(lasted))
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
        if self.custody is not None:  # our leases expire now: another controller takes them at once
            await self.custody.stop(release=True)
        for task in (self._watch, self._saver):
            if task is not None:
                task.cancel()

    def _save(self, s: RelaySession) -> None:
        if self.writer is None or self._closing:
            return
        s.mark_saved()
        fields = {"state": s.state, "reason": s.reason[:500], "started_at": store.ms(s.started_at),
                  "ended_at": store.ms(s.ended_at), "detail": dict(s.detail)}
        ended = self.lease.release_in if self.lease is not None and s.state == "ended" else None
        self.writer.submit(store.save_op(s.id, fields, then=ended))  # its end and its lease go at once

    def _audit(self, s: RelaySession, action: str, **more: Any) -> None:
        """Its start or end in the audit log: what, where (zones), who (not while shutting down)."""
        if self.writer is None or self._closing:
            return
        self.writer.submit(store.audit_op(action, s.id, s.user, s.schedule_id, details(
            url=s.url, **where(s.target), units=len(s.nodes), priority=s.priority.value,
            schedule=s.schedule_id, **more)))

    async def _save_loop(self) -> None:
        """State changes made by the modes (interrupted, resumed) reach the database too."""
        while any(s.state != "ended" for s in self.sessions.values()):
            await asyncio.sleep(SAVE_S)
            for s in list(self.sessions.values()):
                if s.state != "ended" and s.unsaved():
                    self._save(s)

    # ------------------------------------------------------------------ hooks for modes

    def _on_play(self, s: RelaySession) -> None:
        now = asyncio.get_running_loop().time()
        s.told(s.nodes, now)
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
            s.add_timer(asyncio.get_running_loop().call_later(max(0.0, left), self.end, s, "finished"))
        self._save(s)
        self._audit(s, "relay_start")
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
                    if (not self.presence.is_online(n) or self.presence.telemetry_of(n).get("relay")
                            or now - s.last_told(n) < RESEND_S):
                        continue
                    s.told([n], now)
                    self._command(s, "play_stream", {"url": s.url}, [p.AudioScope(kind="node", id=n)])

    def _trim(self) -> None:
        ended = [k for k, v in self.sessions.items() if v.state == "ended"]
        for k in ended[: max(0, len(ended) - KEEP_ENDED)]:
            del self.sessions[k]

    def _command(self, s: RelaySession, name: str, args: dict[str, Any],
                 scopes: list[p.AudioScope] | None = None) -> None:
        on_reply = _refusals_of(s) if name == "play_stream" else None
        self.link.command(s.scopes if scopes is None else scopes, name, args,
                          expires_at=p.now_ms() + 10_000, on_reply=on_reply)


def _refusals_of(s: RelaySession) -> ReplyHandler:
    """A unit's answer to our play_stream: a refusal (e.g. ``power_off``) is shown per unit."""

    def reply(node_id: str, resp: p.CommandResponse) -> None:
        if node_id not in s.nodes:
            return
        refused: dict[str, str] = s.detail.setdefault("units_refused", {})
        if resp.status == "error":
            refused[node_id] = resp.error[:100]
        else:
            refused.pop(node_id, None)

    return reply
