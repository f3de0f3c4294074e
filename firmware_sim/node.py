"""A simulated loudspeaker node that follows docs/protocol.md as real firmware would.

One :class:`SimNode` is one unit: its own MQTT connection (client id = node id, clean
session, last-will ``offline``), birth/shutdown state, heartbeats, telemetry, commands
(:mod:`firmware_sim.commands`), the manifest + chunk + repair download of broadcasts
(:mod:`firmware_sim.download`) and a playback queue (:mod:`firmware_sim.player`).
This module keeps the connection, lifecycle, heartbeats, telemetry and the dispatch of
incoming messages to those parts. Nothing runs in a thread; a node costs two driver tasks,
a few timers while it downloads, and a task while it plays, so a thousand of them fit in
one asyncio loop (see :mod:`firmware_sim.fleet`, which also replaces each node's
heartbeat ticker with one shared ticker).

What a test can inspect: ``played`` (bc ids in play order), ``audio`` (verified files),
``acks`` ((bc, state) in send order), ``stats`` (counters) and ``finished``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from devices.mqtt import AsyncMqttClient, BrokerAddress, MqttError, Will
from devices.protocol import (
    Ack,
    AckState,
    ControllerState,
    Heartbeat,
    NodeConfig,
    NodeState,
    NodeStatus,
    PayloadError,
    Telemetry,
    Topics,
    decode,
    encode,
    valid_id,
)
from firmware_sim.clock import ClockSync, NodeClock
from firmware_sim.commands import Commands
from firmware_sim.download import FINISHED_KEEP, BlobCache, Downloads
from firmware_sim.faults import Faults
from firmware_sim.live import LiveReceiver
from firmware_sim.player import Player
from firmware_sim.relay import RelayFetcher

__all__ = ["BlobCache", "NodeStats", "SimNode"]

logger = logging.getLogger(__name__)

MAX_GROUPS = 64


@dataclass
class NodeStats:
    msgs_in: int = 0
    bytes_in: int = 0
    dropped_in: int = 0  # Faults.drop_rate
    payload_errors: int = 0
    unknown_topics: int = 0
    handler_errors: int = 0
    manifests: int = 0
    chunks_ok: int = 0
    chunks_bad: int = 0
    chunks_dup: int = 0
    chunks_ignored: int = 0  # for a broadcast not being downloaded
    chunks_fault_dropped: int = 0
    chunks_fault_corrupted: int = 0
    checksum_mismatches: int = 0
    repairs_sent: int = 0
    acks_sent: int = 0
    commands: int = 0
    commands_expired: int = 0
    commands_duplicate: int = 0
    commands_ignored: int = 0
    commands_retained: int = 0  # retained commands refused (never executed)
    crashes: int = 0  # Faults.crash_every_s
    heartbeats: int = 0
    telemetry: int = 0
    publish_dropped: int = 0  # not connected when something had to go out
    connects: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class SimNode:
    """One simulated loudspeaker unit (see the module docstring)."""

    def __init__(
        self,
        node_id: str,
        broker: BrokerAddress,
        *,
        prefix: str = "lp",
        heartbeat_s: float = 15.0,
        telemetry_s: float = 60.0,
        fw: str = "sim-1.0",
        faults: Faults | None = None,
        play_dir: Path | None = None,
        session: str | None = None,
        groups: list[str] | None = None,
        time_scale: float | None = None,
        repair_idle_s: float = 2.0,
        own_ticker: bool = True,
        keep_audio: bool = True,
        blobs: BlobCache | None = None,
        log_link_failures: bool = True,
    ) -> None:
        if not valid_id(node_id):
            raise ValueError(f"invalid node id {node_id!r}")
        if heartbeat_s <= 0 or telemetry_s <= 0 or repair_idle_s <= 0:
            raise ValueError("heartbeat_s, telemetry_s and repair_idle_s must be positive")
        if broker.username is None and broker.password is not None:
            broker = replace(broker, username=node_id)  # username = node id by convention
        if faults is not None and faults.claim_id:  # logs in as itself, claims another id
            if not valid_id(faults.claim_id):
                raise ValueError(f"invalid claim_id {faults.claim_id!r}")
            broker = replace(broker, username=broker.username or node_id)
            node_id = faults.claim_id
        self.node_id = node_id
        self.broker = broker
        self.topics = Topics(prefix)
        self.heartbeat_s = heartbeat_s
        self.telemetry_s = telemetry_s
        self.fw = fw
        self.faults = faults if faults is not None else Faults()
        self.time_scale = time_scale if time_scale is not None else self.faults.time_scale
        self.repair_idle_s = repair_idle_s
        self.play_dir = play_dir
        self.session = session or secrets.token_hex(4)
        self.initial_groups = [g for g in (groups or []) if valid_id(g)]
        self.own_ticker = own_ticker
        self.keep_audio = keep_audio
        self.blobs = blobs
        self.log_link_failures = log_link_failures

        self.stats = NodeStats()
        self.audio: dict[str, bytes] = {}
        self.acks: list[tuple[str, str]] = []
        #: "Non-volatile": bc -> final (state, reason); survives stop/start of this object.
        self.finished: OrderedDict[str, tuple[AckState, str]] = OrderedDict()
        self.config: NodeConfig | None = None
        self.controller_status = "unknown"
        self.volume = 70
        self.groups_requested: set[str] = set()
        self.groups_subscribed: set[str] = set()
        self.clock = NodeClock(self.faults.clock_offset_ms, self.faults.clock_drift_ppm)
        self.sync = ClockSync(node_id, self.clock,
                              lambda body: self._publish(self.topics.time(node_id), body, qos=0),
                              lambda delay, fn: self._later(delay, fn))
        self.player = Player(
            node_id, clock=self.clock.now_ms, controller_clock=self.controller_ms,
            on_ack=self._player_ack, on_change=self._changed,
            time_scale=self.time_scale, power=self.faults.power_on,
            decode_error=self.faults.decode_error, play_dir=play_dir,
        )
        self._rng = self.faults.rng_for(node_id)
        self._ip = f"10.{self._rng.randrange(256)}.{self._rng.randrange(256)}.{self._rng.randrange(1, 255)}"
        self._rssi = self._rng.randint(-95, -60)
        self._temp = round(self._rng.uniform(33.0, 45.0), 1)
        self._link: AsyncMqttClient | None = None
        self._ready = asyncio.Event()
        self._boot = time.monotonic()
        self._boots = 0
        self._hb_seq = 0
        self._next_hb = self._next_tel = float("inf")
        self._tel_pending = False
        self.downloads = Downloads(self)
        self.commands = Commands(self)
        self.live = LiveReceiver(self)
        self.relay = RelayFetcher(node_id, self._changed)
        self.commands.register_live(self.live)
        self._tasks: set[asyncio.Task[None]] = set()
        self._handles: set[asyncio.TimerHandle] = set()
        self._ticker_task: asyncio.Task[None] | None = None
        t = self.topics
        self._exact_topics: dict[str, Callable[[str, bytes], None]] = {
            t.config(node_id): self._on_config,
            t.cmd(node_id): self.commands.on_command,
            t.controller_state(): self._on_controller_state,
            t.clock(node_id): lambda _topic, payload: self._on_clock(payload),
        }
        self._last_in = self._last_out = 0.0  # delivery times of delayed messages (keep order)

    # ------------------------------------------------------------------ public API

    @property
    def played(self) -> list[str]:
        return self.player.played

    @property
    def receiving(self) -> list[str]:
        """Broadcasts being downloaded now."""
        return list(self.downloads)

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.is_connected

    @property
    def running(self) -> bool:
        return self._link is not None

    def clock_ms(self) -> int:
        """The node's clock (real clock + Faults.clock_offset_ms, drifting by clock_drift_ppm)."""
        return int(self.clock.now_ms())

    def controller_ms(self) -> float:
        """The controller's clock as this node estimates it: expiry instants are on that clock."""
        return self.sync.controller_now()

    def uptime_s(self) -> int:
        return int(time.monotonic() - self._boot)

    async def start(self, *, wait: bool = True, wait_s: float = 15.0) -> None:
        """Boot: connect (and keep reconnecting); with ``wait``, until subscriptions are acked."""
        if self._link is not None:
            return
        if self._boots:
            self.session = secrets.token_hex(4)  # a new session at every boot
        self._boots += 1
        self._boot = time.monotonic()
        self._hb_seq = 0
        self._ready = asyncio.Event()
        will = Will(self.topics.state(self.node_id), self._state_payload(NodeStatus.OFFLINE))
        self._link = AsyncMqttClient(  # §1: reconnect backoff 1 s .. 60 s
            self.node_id, self.broker, will=will, on_message=self._on_message,
            on_connect=self._on_connect, log_failures=self.log_link_failures,
            min_backoff=1.0, max_backoff=60.0,
        )
        self._link.start()
        if self.own_ticker:
            self._ticker_task = asyncio.create_task(self._ticker(), name=f"tick-{self.node_id}")
        if wait:
            await self.wait_ready(wait_s)

    async def wait_ready(self, wait_s: float = 15.0) -> None:
        """Until the node and group subscriptions of the current connection are acked."""
        await asyncio.wait_for(self._ready.wait(), wait_s)

    async def stop(self, reason: str = "") -> None:
        """Clean shutdown: state ``shutdown`` (retained), then DISCONNECT (no last-will)."""
        link = self._power_down()
        if link is not None:
            await link.stop(final=(self.topics.state(self.node_id),
                                   self._state_payload(NodeStatus.SHUTDOWN, reason)))
            logger.debug("%s: stopped (%s)", self.node_id, reason or "shutdown")

    async def kill(self) -> None:
        """Power loss: the TCP link just drops, so the broker publishes the last-will."""
        link = self._power_down()
        if link is not None:
            await link.kill()
            logger.debug("%s: killed", self.node_id)

    def tick(self) -> None:
        """Periodic work (heartbeat, telemetry, expiry); a fleet calls this from one ticker."""
        now = time.monotonic()
        if self.faults.crash_every_s and self.connected and now - self._boot >= self.faults.crash_every_s:
            self._spawn(self._crash(), f"crash-{self.node_id}")
            return
        if self.connected:
            if not self.faults.no_clock_sync:
                self.sync.tick(now)
            if now >= self._next_hb:
                self._send_heartbeat(now)
            if now >= self._next_tel:
                self._send_telemetry()
        if self.downloads:
            self.downloads.expire(self.controller_ms())
        if self.player.queue:
            self.player.expire_due()
        self.commands.prune(now)

    # ------------------------------------------------------------------ lifecycle internals

    def _power_down(self) -> AsyncMqttClient | None:
        link, self._link = self._link, None
        me = asyncio.current_task()
        for task in list(self._tasks):
            if task is not me:  # e.g. a pending reboot must not restart a stopped node
                task.cancel()
        if self._ticker_task is not None:
            self._ticker_task.cancel()
            self._ticker_task = None
        for h in self._handles:
            h.cancel()
        self._handles.clear()
        self.downloads.clear()
        self.live.end("shutdown")
        self.relay.stop()
        self.commands.stream = ""
        self.player.reset()  # RAM is gone; ``finished`` stays (NVS)
        self.groups_requested.clear()
        self.groups_subscribed.clear()
        self._next_hb = self._next_tel = float("inf")
        return link

    async def _ticker(self) -> None:
        period = max(0.05, min(1.0, self.heartbeat_s / 4, self.telemetry_s / 4))
        while True:
            await asyncio.sleep(period)
            try:
                self.tick()
            except Exception:  # the ticker must survive a bug in one step
                logger.exception("%s: tick failed", self.node_id)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _later(self, delay: float, fn: Callable[..., object], *args: object) -> None:
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []

        def run() -> None:
            self._handles.discard(holder[0])
            fn(*args)

        holder.append(loop.call_later(delay, run))
        self._handles.add(holder[0])

    def _on_connect(self) -> None:
        link = self._link
        if link is None:
            return
        self.stats.connects += 1
        if not self.faults.no_clock_sync:
            self.sync.restart()
        self._publish(self.topics.state(self.node_id), self._state_payload(NodeStatus.ONLINE),
                      qos=1, retain=True)
        waits = [link.subscribe(self.topics.node_subscriptions(self.node_id))]
        self.groups_requested.clear()
        self.groups_subscribed.clear()
        groups = self.config.groups if self.config is not None else self.initial_groups
        waits += self._apply_groups([g for g in groups if valid_id(g)])
        now = time.monotonic()
        self._send_heartbeat(now)
        self._send_telemetry()
        self._spawn(self._await_ready(waits), f"ready-{self.node_id}")
        logger.debug("%s: connected (session %s)", self.node_id, self.session)

    async def _await_ready(self, waits: list[asyncio.Future[list[int]] | None]) -> None:
        try:
            await asyncio.gather(*(w for w in waits if w is not None))
        except (asyncio.CancelledError, MqttError):
            return
        if all(w is not None for w in waits):
            self._ready.set()

    def _apply_groups(self, groups: list[str]) -> list[asyncio.Future[list[int]] | None]:
        """Subscribe added groups, unsubscribe removed ones; returns the SUBACK futures."""
        link = self._link
        wanted = set(groups)
        removed = self.groups_requested - wanted
        added = sorted(wanted - self.groups_requested)
        futs: list[asyncio.Future[list[int]] | None] = []
        if link is None or not link.is_connected:
            return futs
        if removed:
            link.unsubscribe([t for g in sorted(removed) for t in self.topics.group_subscriptions(g)])
            self.groups_requested -= removed
            self.groups_subscribed -= removed
        for g in added:
            fut = link.subscribe(self.topics.group_subscriptions(g))
            self.groups_requested.add(g)
            if fut is not None:
                fut.add_done_callback(functools.partial(self._group_acked, g))
            futs.append(fut)
        if added or removed:
            logger.debug("%s: groups +%s -%s", self.node_id, added, sorted(removed))
        return futs

    def _group_acked(self, group: str, fut: asyncio.Future[list[int]]) -> None:
        if fut.cancelled() or fut.exception() is not None or group not in self.groups_requested:
            return
        if all(code < 0x80 for code in fut.result()):
            self.groups_subscribed.add(group)
        else:
            logger.warning("%s: broker refused the subscription to group %s", self.node_id, group)

    # ------------------------------------------------------------------ outgoing

    def _on_clock(self, payload: bytes) -> None:
        if not self.sync.on_reply(payload):
            self.stats.payload_errors += 1

    def _publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> bool:
        if (self.faults.net_delay_ms or self.faults.jitter_ms) and self._link is not None:
            self._last_out = self._net_delay(self._last_out)
            self._later(self._last_out - time.monotonic(), self._publish_now, topic, payload, qos, retain)
            return True
        return self._publish_now(topic, payload, qos, retain)

    def _publish_now(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> bool:
        link = self._link
        if link is None or not link.is_connected:
            self.stats.publish_dropped += 1
            return False
        try:
            link.publish_nowait(topic, payload, qos=qos, retain=retain)
        except MqttError as exc:
            self.stats.publish_dropped += 1
            logger.debug("%s: publish to %s dropped: %s", self.node_id, topic, exc)
            return False
        return True

    def _state_payload(self, status: NodeStatus, reason: str = "") -> bytes:
        return encode(NodeState(
            ts=self.clock_ms(), node_id=self.node_id, status=status, session=self.session,
            fw=self.fw, hw="sim", reason=reason,
        ))

    def _send_heartbeat(self, now: float) -> None:
        hb = Heartbeat(ts=self.clock_ms(), node_id=self.node_id, session=self.session,
                       seq=self._hb_seq, uptime_s=self.uptime_s(), playing=self.player.playing)
        if self._publish(self.topics.heartbeat(self.node_id), encode(hb), qos=0):
            self.stats.heartbeats += 1
            self._hb_seq += 1
        self._next_hb = now + self.heartbeat_s

    def _send_telemetry(self) -> None:
        self._rssi = max(-110, min(-50, self._rssi + self._rng.randint(-2, 2)))
        self._temp = round(max(20.0, min(70.0, self._temp + self._rng.uniform(-0.5, 0.5))), 1)
        used = self._storage_used()
        tel = Telemetry(
            ts=self.clock_ms(), node_id=self.node_id, power=self.player.power, volume=self.volume,
            rssi_dbm=self._rssi, temp_c=self._temp,
            storage_free_kb=max(0, self.faults.storage_kb * 1024 - used) // 1024,
            ip=self._ip, uptime_s=self.uptime_s(), faults=list(self.faults.hw_faults),
            clock_offset_ms=None if self.sync.offset_ms is None else round(self.sync.offset_ms),
            fw=self.fw, relay=self.relay.state, **self._source(),
        )
        if self._publish(self.topics.telemetry(self.node_id), encode(tel), qos=0):
            self.stats.telemetry += 1
        self._next_tel = time.monotonic() + self.telemetry_s

    def _source(self) -> dict[str, str]:
        """Telemetry ``playing``/``source``: a bulletin, else the relay stream, else idle."""
        if self.live.active:
            return {"playing": self.live.active, "source": "live"}
        if self.player.playing:
            return {"playing": self.player.playing, "source": "bulletin"}
        if self.commands.stream:
            return {"playing": self.commands.stream[:500], "source": "relay"}
        return {"playing": "", "source": "idle"}

    def _changed(self) -> None:
        """Telemetry "on change" (coalesced to one message per loop iteration)."""
        if self._tel_pending or self._link is None:
            return
        self._tel_pending = True

        def flush() -> None:
            self._tel_pending = False
            self._send_telemetry()

        asyncio.get_running_loop().call_soon(flush)

    def _ack(self, bc: str, state: AckState, reason: str = "", have: int | None = None) -> None:
        if state in (AckState.PLAYED, AckState.FAILED):
            self.finished[bc] = (state, reason)
            self.finished.move_to_end(bc)
            while len(self.finished) > FINISHED_KEEP:
                self.finished.popitem(last=False)
        payload = encode(Ack(ts=self.clock_ms(), node_id=self.node_id, bc=bc, state=state,
                             reason=reason, have=have))
        if self.faults.ack_delay_s > 0:
            self._later(self.faults.ack_delay_s, self._send_ack, bc, state, payload)
        else:
            self._send_ack(bc, state, payload)

    def _send_ack(self, bc: str, state: AckState, payload: bytes) -> None:
        self.acks.append((bc, state.value))
        if self._publish(self.topics.ack(self.node_id), payload, qos=1):
            self.stats.acks_sent += 1
        logger.debug("%s: ack %s %s", self.node_id, bc, state.value)

    def _player_ack(self, bc: str, state: AckState, reason: str) -> None:
        self._ack(bc, state, reason)

    # ------------------------------------------------------------------ incoming

    def _bad(self, topic: str, why: object) -> None:
        self.stats.payload_errors += 1
        logger.warning("%s: ignored bad payload on %s: %s", self.node_id, topic, why)

    def _net_delay(self, last: float) -> float:
        """Real time (monotonic) at which a message sent now arrives: delay + jitter, in order."""
        f = self.faults
        t = time.monotonic() + (f.net_delay_ms + self._rng.uniform(0, f.jitter_ms)) / 1000.0
        return max(t, last)

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        self.stats.msgs_in += 1
        self.stats.bytes_in += len(payload)
        if self.faults.drop_rate and self._rng.random() < self.faults.drop_rate:
            self.stats.dropped_in += 1
            return
        if retained and topic.endswith("/cmd"):  # §2: a command is never replayed from a retained copy
            self.stats.commands_retained += 1
            logger.warning("%s: ignored a retained command on %s", self.node_id, topic)
            return
        if self.faults.net_delay_ms or self.faults.jitter_ms:
            self._last_in = self._net_delay(self._last_in)
            self._later(self._last_in - time.monotonic(), self._handle, topic, payload)
            return
        self._handle(topic, payload)

    def _handle(self, topic: str, payload: bytes) -> None:
        try:
            self._dispatch(topic, payload)
        except Exception:  # one bad message must never take the node down
            self.stats.handler_errors += 1
            logger.exception("%s: failed to handle a message on %s", self.node_id, topic)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        handler = self._exact_topics.get(topic)
        if handler is not None:
            handler(topic, payload)
            return
        t, me = self.topics, self.node_id
        head = t.prefix + "/"
        parts = topic[len(head):].split("/") if topic.startswith(head) else []
        if len(parts) == 3 and parts[0] == "group" and parts[2] == "cmd":
            if parts[1] in self.groups_requested:
                self.commands.on_command(topic, payload)
            return
        if len(parts) == 5 and parts[2] == "bcast" and (parts[0], parts[1]) in (
            ("node", me), ("group", parts[1])
        ):
            bc, kind = parts[3], parts[4]
            if valid_id(bc) and kind == "manifest":
                self.downloads.on_manifest(topic, bc, payload)
                return
            if valid_id(bc) and kind == "data":
                self.downloads.on_chunk(bc, payload)
                return
            if valid_id(bc) and kind == "live" and (parts[0] == "node" or parts[1] in self.groups_requested):
                self.live.on_frame(bc, payload)
                return
        self.stats.unknown_topics += 1
        logger.debug("%s: message on unexpected topic %s", self.node_id, topic)

    def _on_config(self, topic: str, payload: bytes) -> None:
        if not payload:
            logger.info("%s: retained config cleared; keeping the current settings", self.node_id)
            return
        try:
            cfg = decode(NodeConfig, payload)
        except PayloadError as exc:
            self._bad(topic, exc)
            return
        if cfg.node_id != self.node_id:
            self._bad(topic, f"config names node {cfg.node_id!r}")
            return
        groups = [g for g in cfg.groups if valid_id(g)][:MAX_GROUPS]
        if len(groups) != len(cfg.groups):
            self._bad(topic, "invalid or too many group ids in config (skipped)")
        self.config = cfg
        self._set_volume(cfg.volume)
        self._apply_groups(groups)

    def _set_volume(self, level: int) -> None:
        if level != self.volume:
            self.volume = level
            self._changed()

    def _on_controller_state(self, topic: str, payload: bytes) -> None:
        if not payload:
            self.controller_status = "unknown"
            return
        try:
            self.controller_status = decode(ControllerState, payload).status.value
        except PayloadError as exc:
            self._bad(topic, exc)

    def _storage_used(self) -> int:
        return self.player.used_bytes() + self.downloads.storage_bytes()

    async def _crash(self) -> None:
        """``Faults.crash_every_s``: power loss (last-will), then boot again."""
        self.stats.crashes += 1
        logger.info("%s: crashing (fault injection)", self.node_id)
        await self.kill()
        await asyncio.sleep(self.faults.crash_down_s)
        await self.start(wait=False)

    async def _reboot(self, delay: float) -> None:
        """``reboot`` command: clean shutdown, "boot time", start again."""
        await asyncio.sleep(delay)
        logger.info("%s: rebooting", self.node_id)
        await self.stop(reason="reboot")
        await asyncio.sleep(1.0 * self.time_scale)  # "boot time"
        await self.start(wait=False)
