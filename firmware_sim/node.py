"""A simulated loudspeaker node that follows docs/protocol.md as real firmware would.

One :class:`SimNode` is one unit: its own MQTT connection (client id = node id, clean
session, last-will ``offline``), birth/shutdown state and the dispatch of incoming messages
to its parts. This module is a thin shell: it builds the parts, hands each of them the node's
:class:`~firmware_sim.io.NodeIO` (:class:`~firmware_sim.runtime.NodeRuntime`: publish, acks,
clocks, timers), never itself, and runs the lifecycle (boot, clean shutdown, power loss,
reboot, crash faults). The parts: :mod:`~firmware_sim.membership` (subscriptions, config),
:mod:`~firmware_sim.telemetry` (heartbeats, telemetry), :mod:`~firmware_sim.commands` (the
command desk; each part registers its own commands), :mod:`~firmware_sim.download`
(manifest + chunk + repair), :mod:`~firmware_sim.player` (the playback queue),
:mod:`~firmware_sim.playback` (the playback commands), :mod:`~firmware_sim.live_audio`
(live sessions) and :mod:`~firmware_sim.relay` (internet streams).

Nothing runs in a thread, so a thousand nodes fit in one asyncio loop (:mod:`firmware_sim.fleet`,
which also replaces each node's ticker with one shared ticker). What a test can inspect:
``played`` (bc ids in play order), ``audio`` (verified files), ``acks`` ((bc, state) in send
order), ``stats`` (counters) and ``finished``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from pathlib import Path

from devices.mqtt import AsyncMqttClient, Brokers, MqttError, Will
from devices.protocol import (
    AckState,
    ControllerState,
    FinishedLog,
    NodeConfig,
    NodeState,
    NodeStatus,
    PayloadError,
    Topics,
    decode,
    encode,
)
from devices.unit_link import unit_client
from firmware_sim.clock import ClockSync
from firmware_sim.commands import CommandDesk
from firmware_sim.download import BlobCache, Downloads
from firmware_sim.faults import Faults, identity
from firmware_sim.flash import FinishedInFlash
from firmware_sim.hardware import Hardware
from firmware_sim.inbox import Inbox
from firmware_sim.io import NodeStats
from firmware_sim.live_audio import LiveReceiver
from firmware_sim.membership import Membership, SubAck
from firmware_sim.playback import PlaybackCommands
from firmware_sim.player import Player
from firmware_sim.playlog import PlayLog
from firmware_sim.relay import RelayFetcher
from firmware_sim.runtime import NodeRuntime
from firmware_sim.telemetry import Reporter

__all__ = ["BlobCache", "NodeStats", "SimNode"]

logger = logging.getLogger(__name__)


class SimNode:
    """One simulated loudspeaker unit (see the module docstring)."""

    def __init__(
        self, node_id: str, broker: Brokers, *, prefix: str = "lp", heartbeat_s: float = 15.0,
        telemetry_s: float = 60.0, fw: str = "sim-1.0", faults: Faults | None = None,
        play_dir: Path | None = None, session: str | None = None, groups: list[str] | None = None,
        time_scale: float | None = None, repair_idle_s: float = 2.0, own_ticker: bool = True,
        keep_audio: bool = True, blobs: BlobCache | None = None, log_link_failures: bool = True,
        play_log: PlayLog | None = None, hardware: Hardware | None = None,
    ) -> None:
        if heartbeat_s <= 0 or telemetry_s <= 0 or repair_idle_s <= 0:
            raise ValueError("heartbeat_s, telemetry_s and repair_idle_s must be positive")
        self.faults = f = faults if faults is not None else Faults()
        self.node_id, self.brokers = identity(node_id, broker, f)  # §1 "Several brokers": a ring
        node_id = self.node_id
        self.topics, self.fw, self.session = Topics(prefix), fw, session or secrets.token_hex(4)
        self.time_scale = time_scale if time_scale is not None else f.time_scale
        self.own_ticker, self.log_link_failures = own_ticker, log_link_failures
        self.controller_status = "unknown"
        rng = f.rng_for(node_id)
        self._rt = io = NodeRuntime(node_id, self.topics, f, rng,
                                    FinishedInFlash(hardware.flash) if hardware else None)
        self.player = Player(
            node_id, clock=io.clock.now_ms, controller_clock=io.controller_ms, on_ack=io.ack,
            on_change=io.changed, time_scale=self.time_scale, power=f.power_on,
            decode_error=f.decode_error, play_dir=play_dir, play_log=play_log,
            output=hardware.output if hardware else None, amp=hardware.amp if hardware else None,
        )
        self.hw = hardware.hw if hardware else "sim"
        self.downloads = Downloads(io, self.player, repair_idle_s=repair_idle_s, blobs=blobs,
                                   keep_audio=keep_audio, config=lambda: self.membership.config,
                                   flash=hardware.flash if hardware else None)
        self.live = LiveReceiver(io, self.player, hardware.output if hardware else None)
        self.relay = RelayFetcher(node_id, io.changed, hardware.output if hardware else None)
        self.reporter = Reporter(io, rng, fw=fw, heartbeat_s=heartbeat_s, telemetry_s=telemetry_s,
                                 player=self.player, live=self.live, relay=self.relay,
                                 storage_used=self.downloads.used_bytes, sync=io.sync,
                                 board=hardware.board if hardware else None)
        io.on_change = lambda: self.reporter.telemetry(time.monotonic())
        self.membership = Membership(io, initial_groups=groups or [], on_volume=self.player.set_volume,
                                     on_reachable=self._birth)  # a new birth once all is granted
        self.commands = desk = CommandDesk(io)
        desk.register("ping", lambda _args: {"uptime_s": io.uptime_s()})
        desk.register("reboot", self._reboot_command)
        io.sync.register(desk)
        self.live.register(desk)
        PlaybackCommands(io, player=self.player, downloads=self.downloads, relay=self.relay,
                         live=self.live, clock=io.sync).register(desk)
        self._ready = asyncio.Event()
        self._boots = 0
        self._ticker_task: asyncio.Task[None] | None = None
        self._inbox = Inbox(node_id, self.topics, io.stats, {
            self.topics.config(node_id): self.membership.on_config,
            self.topics.cmd(node_id): desk.on_command,
            self.topics.controller_state(): self._on_controller_state,
            self.topics.clock(node_id): self._on_clock,
        }, self)
        self._last_in = 0.0  # delivery time of the last delayed incoming message (keeps order)

    # ------------------------------------------------------------------ what a test reads

    @property
    def stats(self) -> NodeStats:
        return self._rt.stats

    @property
    def finished(self) -> FinishedLog:
        """bc → final (state, reason) of the last finished broadcasts ("non-volatile")."""
        return self._rt.finished

    @property
    def acks(self) -> list[tuple[str, str]]:
        return self._rt.acks

    @property
    def audio(self) -> dict[str, bytes]:
        return self.downloads.audio

    @property
    def played(self) -> list[str]:
        return self.player.played

    @property
    def volume(self) -> int:
        return self.player.volume

    @volume.setter
    def volume(self, level: int) -> None:
        self.player.set_volume(level)

    @property
    def config(self) -> NodeConfig | None:
        return self.membership.config

    @property
    def groups_requested(self) -> set[str]:
        return self.membership.requested

    @property
    def groups_subscribed(self) -> set[str]:
        return self.membership.subscribed

    @property
    def sync(self) -> ClockSync:
        return self._rt.sync

    @property
    def receiving(self) -> list[str]:
        """Broadcasts being downloaded now."""
        return list(self.downloads)

    @property
    def connected(self) -> bool:
        return self._rt.connected

    @property
    def link_error(self) -> str:
        """Why the last connection attempt failed ('' once connected), e.g. the broker's refusal."""
        link = self._rt.link
        return link.last_error if link is not None else ""

    @property
    def running(self) -> bool:
        return self._rt.link is not None

    def clock_ms(self) -> int:
        """The node's clock (real clock + Faults.clock_offset_ms, drifting by clock_drift_ppm)."""
        return self._rt.clock_ms()

    def controller_ms(self) -> float:
        """The controller's clock as this node estimates it: expiry instants are on that clock."""
        return self._rt.controller_ms()

    def uptime_s(self) -> int:
        return self._rt.uptime_s()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, wait: bool = True, wait_s: float = 15.0) -> None:
        """Boot: connect (and keep reconnecting); with ``wait``, until subscriptions are acked."""
        if self._rt.link is not None:
            return
        if self._boots:
            self.session = secrets.token_hex(4)  # a new session at every boot
        self.downloads.restore()  # verified files kept in flash wait for their play again
        self._boots += 1
        self.reporter.boot()
        self._ready = asyncio.Event()
        will = self.faults.last_will(Will(self.topics.state(self.node_id),
                                          self._state_payload(NodeStatus.OFFLINE)))
        link = unit_client(self.node_id, self.brokers, will=will, on_message=self._on_message,
                           on_connect=self._on_connect, log_failures=self.log_link_failures,
                           backoff=self.faults.backoff())
        self._rt.boot(link)
        link.start()
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

    async def drop_network(self, down_s: float) -> None:
        """Network loss, power kept: the link drops (the broker sends the last-will) and comes back
        ``down_s`` later, same session; the queue, downloads and playback go on meanwhile."""
        link = self._rt.link
        if link is None:
            return
        await link.kill()
        await asyncio.sleep(down_s)
        if self._rt.link is link:  # not powered down meanwhile
            link.start()

    def tick(self) -> None:
        """Periodic work (heartbeat, telemetry, expiry); a fleet calls this from one ticker."""
        now = time.monotonic()
        if self.faults.crash_every_s and self.connected and self._rt.up_for(now) >= self.faults.crash_every_s:
            self._rt.spawn(self._crash(), f"crash-{self.node_id}")
            return
        if self.connected:
            if not self.faults.no_clock_sync:
                self._rt.sync.tick(now)
            self.reporter.tick(now, self.session)
        if self.downloads:
            self.downloads.expire(self.controller_ms())
        if self.player.queue:
            self.player.expire_due()
        self.commands.prune(now)

    def _power_down(self) -> AsyncMqttClient | None:
        link = self._rt.power_down()
        if self._ticker_task is not None:
            self._ticker_task.cancel()
            self._ticker_task = None
        self.downloads.clear()
        self.live.end("shutdown")
        self.relay.stop()
        if self.player.playing:  # started is in NVS: after the boot it is failed/power_off, never replayed
            self._rt.finished.finish(self.player.playing, AckState.FAILED, "power_off")
        self.player.reset()  # RAM is gone; ``finished`` stays (NVS)
        self.membership.reset()
        self.reporter.stop()
        return link

    async def _ticker(self) -> None:
        r = self.reporter
        period = max(0.05, min(1.0, r.heartbeat_s / 4, r.telemetry_s / 4))
        while True:
            await asyncio.sleep(period)
            try:
                self.tick()
            except Exception:  # the ticker must survive a bug in one step
                logger.exception("%s: tick failed", self.node_id)

    def _on_connect(self) -> None:
        if (link := self._rt.link) is None:
            return
        self.stats.connects += 1
        if not self.faults.no_clock_sync:
            self._rt.sync.restart()
        self._birth()
        waits = self.membership.connected(link)
        self.downloads.reconnected()  # what was sent while it was away is lost: ask again soon
        self.reporter.connected(time.monotonic(), self.session)
        self._rt.spawn(self._await_ready(waits), f"ready-{self.node_id}")
        logger.debug("%s: connected (session %s)", self.node_id, self.session)

    async def _await_ready(self, waits: list[SubAck]) -> None:
        try:
            await asyncio.gather(*(w for w in waits if w is not None))
        except (asyncio.CancelledError, MqttError):
            return
        if all(w is not None for w in waits):
            self._ready.set()

    def _birth(self) -> None:
        self._rt.publish(self.topics.state(self.node_id), self._state_payload(NodeStatus.ONLINE), qos=1,
                         retain=True)

    def _state_payload(self, status: NodeStatus, reason: str = "") -> bytes:
        return encode(NodeState(
            ts=self.clock_ms(), node_id=self.node_id, status=status, session=self.session,
            fw=self.fw, hw=self.hw, reason=reason,
        ))

    # ------------------------------------------------------------------ incoming

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        stats = self.stats
        stats.msgs_in += 1
        stats.bytes_in += len(payload)
        if self.faults.drop_rate and self._rt.chance(self.faults.drop_rate):
            stats.dropped_in += 1
            return
        if retained and topic.endswith("/cmd"):  # §2: a command is never replayed from a retained copy
            stats.commands_retained += 1
            logger.warning("%s: ignored a retained command on %s", self.node_id, topic)
            return
        if self.faults.net_delay_ms or self.faults.jitter_ms:
            self._last_in = self._rt.net_delay(self._last_in)
            self._rt.at(self._last_in, self._handle, topic, payload)
            return
        self._handle(topic, payload)

    def _handle(self, topic: str, payload: bytes) -> None:
        self._inbox.handle(topic, payload)

    # the inbox's parts (firmware_sim/inbox.py)
    def on_group_command(self, topic: str, payload: bytes) -> None:
        self.commands.on_command(topic, payload)

    def in_group(self, group: str) -> bool:
        return self.membership.in_group(group)

    def on_manifest(self, topic: str, bc: str, payload: bytes) -> None:
        self.downloads.on_manifest(topic, bc, payload)

    def on_chunk(self, bc: str, payload: bytes) -> None:
        self.downloads.on_chunk(bc, payload)

    def on_live(self, session: str, payload: bytes) -> None:
        self.live.on_frame(session, payload)

    def _on_clock(self, topic: str, payload: bytes) -> None:
        if not self._rt.sync.on_reply(payload):
            self.stats.payload_errors += 1

    def _on_controller_state(self, topic: str, payload: bytes) -> None:
        if not payload:
            self.controller_status = "unknown"
            return
        try:
            self.controller_status = decode(ControllerState, payload).status.value
        except PayloadError as exc:
            self._rt.bad(topic, exc)

    # ------------------------------------------------------------------ restarts

    def _reboot_command(self, args: dict[str, object]) -> dict[str, object]:
        """``reboot``: answered first; the reboot starts once the response is on its way."""
        self._rt.spawn(self._reboot(self.faults.ack_delay_s + 0.05), f"reboot-{self.node_id}")
        return {}

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
