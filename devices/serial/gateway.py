"""The serial gateway: serial-attached boards presented as MQTT nodes (docs/protocol.md §7).

One :class:`SerialGateway` owns one serial line (:class:`~devices.serial.port.SerialLink`,
bus master :class:`~devices.serial.master.BusMaster`) and one MQTT connection (client id =
the gateway id, last-will on its own state). Each child board gets its own node id and
the gateway speaks for it on that node's topics: retained state online/offline from
polling, heartbeats and telemetry, commands on the child's cmd topic answered on its resp
topic (:mod:`devices.serial.commands`), and broadcasts: the gateway downloads the audio
once (:mod:`devices.serial.audio`), plays it on the station's programme line and closes
the relays of the targeted children for the duration, acking per child
(:mod:`devices.serial.line`). The gateway's state lists its children, so when the
gateway dies (last-will) the controller can mark them unknown.

Everything runs on one asyncio loop; the only threads are the port's reader and writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

from devices import protocol as p
from devices.mqtt import MqttError, Will
from devices.mqtt_types import Brokers
from devices.serial.attention import Tones
from devices.serial.audio import Downloads
from devices.serial.boards import Boards
from devices.serial.commands import GatewayCommands
from devices.serial.contract import (
    FAULT_SERIAL_PORT,
    REASON_GATEWAY_SHUTDOWN,
    Child,
    GatewayConfig,
    GatewayState,
    GatewayTelemetry,
)
from devices.serial.line import LinePlayer
from devices.serial.master import BusMaster
from devices.serial.port import Opener, SerialLink, url_opener
from devices.serial.runtime import GatewayRuntime, GatewayStats
from devices.subscribe import Reachable
from devices.unit_link import unit_client

__all__ = ["GatewayStats", "SerialGateway"]

logger = logging.getLogger(__name__)


class SerialGateway:
    """Bridges one serial line of child boards to MQTT (see the module docstring)."""

    def __init__(self, config: GatewayConfig, broker: Brokers, *, opener: Opener | None = None) -> None:
        self.cfg = config
        self.gw = config.gateway_id
        self.broker = broker
        self.session = secrets.token_hex(4)
        self._rt = io = GatewayRuntime(config)
        self.topics = io.topics
        self.link = SerialLink(opener or url_opener(config.port, config.baudrate), name=self.gw,
                               on_state=self._port_state, min_backoff=config.min_backoff,
                               max_backoff=config.max_backoff)
        self.bus = BusMaster(self.link, reply_timeout=config.reply_timeout, attempts=config.attempts)
        self.boards = Boards(io, self.link, self.bus)
        self.line = LinePlayer(io, self.boards)
        self.tones = Tones(io, self.line)  # each child's attention tone, sounded on an emergency
        self.downloads = Downloads(io, self.line, self.tones.alert)
        self.commands = GatewayCommands(io, boards=self.boards, line=self.line, downloads=self.downloads)
        self.groups_subscribed: set[str] = set()
        self._reach = Reachable(self._births)  # §1: births again once refused subscriptions are granted
        self._hb_seq = 0
        self._next_hb = self._next_tel = 0.0

    @property
    def stats(self) -> GatewayStats:
        return self._rt.stats

    @property
    def running(self) -> bool:
        return self._rt.running

    def clock_ms(self) -> int:
        return self._rt.clock_ms()

    def uptime_s(self) -> int:
        return self._rt.uptime_s()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        will = Will(self.topics.state(self.gw), self._state_payload(p.NodeStatus.OFFLINE))
        self._rt.mqtt = unit_client(self.gw, self.broker, will=will, on_message=self._on_message,
                                    on_connect=self._on_connect)  # §1 "Several brokers"
        self._rt.running = True
        self.link.start()
        self._rt.mqtt.start()
        self._rt.spawn(self.boards.poll_loop(), "poll")
        self._rt.spawn(self._ticker(), "tick")

    async def stop(self) -> None:
        """Clean shutdown: relays open, children marked offline, state ``shutdown``, DISCONNECT."""
        self._rt.running = False  # nothing new starts (polls, playback)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.line.shutdown()
        await self._halt_tasks()
        mqtt, self._rt.mqtt = self._rt.mqtt, None
        if mqtt is not None:
            if mqtt.is_connected:
                for child in self._rt.children():
                    with contextlib.suppress(MqttError, TimeoutError):
                        await mqtt.publish(self.topics.state(child.node_id), self.boards.child_payload(
                            child, p.NodeStatus.OFFLINE, REASON_GATEWAY_SHUTDOWN), retain=True, timeout=2)
            await mqtt.stop(final=(self.topics.state(self.gw), self._state_payload(p.NodeStatus.SHUTDOWN)))
        await self.link.stop()

    async def kill(self) -> None:
        """Power loss: the MQTT link just drops (the broker publishes the gateway's last-will)."""
        self._rt.running = False
        mqtt, self._rt.mqtt = self._rt.mqtt, None
        if mqtt is not None:
            await mqtt.kill()
        await self._halt_tasks()
        self.line.reset()
        await self.link.stop()

    async def _halt_tasks(self) -> None:
        self._rt.running = False
        self._rt.cancel_timers()
        self.downloads.clear()
        await self._rt.halt_tasks()

    # ------------------------------------------------------------------ MQTT out

    def _state_payload(self, status: p.NodeStatus, reason: str = "") -> bytes:
        port = ("up" if self.link.is_up else "down") if status == p.NodeStatus.ONLINE else ""
        return p.encode(GatewayState(
            node_id=self.gw, status=status, session=self.session, fw=self.cfg.fw, hw="serial-gateway",
            reason=reason, children=self._rt.child_ids(), port=port,
            port_error="" if self.link.is_up or not port else self.link.last_error,
        ))

    def _send_heartbeats(self) -> None:
        hb = p.Heartbeat(node_id=self.gw, session=self.session, seq=self._hb_seq, uptime_s=self.uptime_s(),
                         playing=self.line.playing)
        if self._rt.publish(self.topics.heartbeat(self.gw), p.encode(hb), qos=0):
            self._hb_seq += 1
        self.boards.heartbeats()

    def send_telemetry(self) -> None:
        """The gateway's own telemetry and every online child's."""
        d, bus, port = self.link.decoder.stats, self.bus.stats, self.link.stats
        serial = {"port_up": self.link.is_up, "port_error": self.link.last_error, "opens": port.opens,
                  "open_failures": port.open_failures, "losses": port.losses, "frames": d.frames,
                  "crc_errors": d.crc_errors, "format_errors": d.format_errors, "requests": bus.requests,
                  "retries": bus.retries, "timeouts": bus.timeouts, "naks": bus.naks}
        tel = GatewayTelemetry(node_id=self.gw, playing=self.line.playing, uptime_s=self.uptime_s(),
                               faults=[] if self.link.is_up else [FAULT_SERIAL_PORT], serial=serial)
        self._rt.publish(self.topics.telemetry(self.gw), p.encode(tel), qos=0)
        for c in self._rt.children():
            self.boards.send_telemetry(c)

    # ------------------------------------------------------------------ MQTT in

    async def _on_connect(self) -> None:
        mqtt = self._rt.mqtt
        if mqtt is None:
            return
        self._rt.publish(self.topics.state(self.gw), self._state_payload(p.NodeStatus.ONLINE), qos=1,
                         retain=True)
        self._reach.connected()
        t = self.topics
        subs = [t.cmd(self.gw), t.controller_state()]
        for nid in self._rt.child_ids():
            subs += [t.config(nid), t.cmd(nid), f"{t.prefix}/node/{nid}/bcast/+/+"]
        self._reach.insist(mqtt, subs, mqtt.subscribe(subs), "its own and its children's topics")
        self.groups_subscribed.clear()
        self._apply_groups()
        self.downloads.reconnected()  # what was sent while it was away is lost: ask again soon
        self.boards.publish_states()
        self._next_hb = self._next_tel = 0.0  # heartbeats and telemetry right away
        logger.info("%s: connected to MQTT %s (%d children)", self.gw, mqtt.broker, len(self._rt.child_ids()))

    def _births(self) -> None:
        """Its own and every child's birth again (§1 "Several brokers" 5.)."""
        self._rt.publish(self.topics.state(self.gw), self._state_payload(p.NodeStatus.ONLINE), qos=1,
                         retain=True)
        self.boards.publish_states()

    def _apply_groups(self) -> None:
        mqtt = self._rt.mqtt
        if mqtt is None or not mqtt.is_connected:
            return
        wanted = self._rt.groups()
        added, removed = sorted(wanted - self.groups_subscribed), sorted(self.groups_subscribed - wanted)
        if removed:
            mqtt.unsubscribe([x for g in removed for x in self.topics.group_subscriptions(g)])
        if added:
            group_topics = [x for g in added for x in self.topics.group_subscriptions(g)]
            self._reach.insist(mqtt, group_topics, mqtt.subscribe(group_topics), f"groups {', '.join(added)}")
        self.groups_subscribed = wanted

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        self.stats.msgs_in += 1
        if retained and topic.endswith("/cmd"):  # §2: a command is never replayed from a retained copy
            logger.warning("%s: ignored a retained command on %s", self.gw, topic)
            return
        try:
            self._dispatch(topic, payload)
        except Exception:  # one bad message must never take the gateway down
            self.stats.handler_errors += 1
            logger.exception("%s: failed to handle a message on %s", self.gw, topic)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        head = self.topics.prefix + "/"
        parts = topic[len(head):].split("/") if topic.startswith(head) else []
        if len(parts) == 3 and parts[0] in ("node", "group") and parts[2] in ("config", "cmd"):
            scope, sid, leaf = parts
            child = self._rt.child(sid) if scope == "node" else None
            if leaf == "config" and child is not None:
                self._on_config(child, topic, payload)
            elif leaf == "cmd" and scope == "node" and sid == self.gw:
                self.commands.on_gateway_command(topic, payload)
            elif leaf == "cmd":
                targets = [child] if child is not None else self._rt.members(sid) if scope == "group" else []
                self.commands.on_command(targets, topic, payload)
            return
        if len(parts) == 5 and parts[0] in ("node", "group") and parts[2] == "bcast" and p.valid_id(parts[3]):
            scope, sid, _, bc, kind = parts
            one = self._rt.child(sid) if scope == "node" else None
            targets = ([one] if one is not None else []) if scope == "node" else self._rt.members(sid)
            if kind == "manifest" and targets:
                self.downloads.on_manifest(targets, topic, bc, payload)
                return
            if kind == "data":
                self.downloads.on_chunk(bc, payload)
                return
        if parts != ["controller", "state"]:
            self.stats.unknown_topics += 1

    def _on_config(self, child: Child, topic: str, payload: bytes) -> None:
        if not payload:
            return  # a cleared config: keep the current settings
        try:
            cfg = p.decode(p.NodeConfig, payload)
        except p.PayloadError as exc:
            self._rt.bad(topic, exc)
            return
        if cfg.node_id != child.node_id:
            self._rt.bad(topic, f"config names node {cfg.node_id!r}")
            return
        child.groups = p.config_groups(cfg)
        child.volume = cfg.volume
        self.tones.provision(child, cfg.attention)
        self._apply_groups()
        self.boards.configured(child)

    # ------------------------------------------------------------------ the serial side

    def _port_state(self, up: bool, error: str) -> None:
        if up:
            logger.info("%s: serial port %s is up", self.gw, self.cfg.port)
        else:
            self.stats.port_faults += 1
            logger.warning("%s: serial port %s is down: %s", self.gw, self.cfg.port, error)
            self.boards.port_down()
        self._rt.publish(self.topics.state(self.gw), self._state_payload(p.NodeStatus.ONLINE), qos=1,
                         retain=True)
        self.send_telemetry()

    # ------------------------------------------------------------------ periodic work

    async def _ticker(self) -> None:
        period = max(0.05, min(0.5, self.cfg.heartbeat_s / 4))
        while self._rt.running:  # a service loop: stop()/kill() end it
            await asyncio.sleep(period)
            try:
                self.tick()
            except Exception:
                logger.exception("%s: tick failed", self.gw)

    def tick(self) -> None:
        now = time.monotonic()
        if self._rt.connected:
            if now >= self._next_hb:
                self._next_hb = now + self.cfg.heartbeat_s
                self._send_heartbeats()
            if now >= self._next_tel:
                self._next_tel = now + self.cfg.telemetry_s
                self.send_telemetry()
        self.downloads.expire(self.clock_ms())
        self.line.expire_due()
        self.commands.prune(now)
