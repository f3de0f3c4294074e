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
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

from devices import protocol as p
from devices.mqtt import AsyncMqttClient, BrokerAddress, MqttError, Will
from devices.serial.audio import Downloads
from devices.serial.commands import GatewayCommands
from devices.serial.contract import (
    FAULT_SERIAL_PORT,
    REASON_GATEWAY_SHUTDOWN,
    REASON_NO_RESPONSE,
    REASON_PORT_DOWN,
    Child,
    ChildState,
    GatewayConfig,
    GatewayState,
    GatewayTelemetry,
)
from devices.serial.line import LinePlayer
from devices.serial.master import BusMaster, BusNak, BusTimeout
from devices.serial.port import Opener, PortDown, SerialLink, SerialLinkError, url_opener
from devices.serial.wire import BoardStatus, Cmd, Input

logger = logging.getLogger(__name__)


@dataclass
class GatewayStats:
    msgs_in: int = 0
    payload_errors: int = 0
    handler_errors: int = 0
    unknown_topics: int = 0
    publish_dropped: int = 0
    acks_sent: int = 0
    port_faults: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class SerialGateway:
    """Bridges one serial line of child boards to MQTT (see the module docstring)."""

    def __init__(self, config: GatewayConfig, broker: BrokerAddress, *, opener: Opener | None = None) -> None:
        self.cfg = config
        self.gw = config.gateway_id
        self.broker = broker
        self.topics = p.Topics(config.prefix)
        self.session = secrets.token_hex(4)
        self.children = {nid: Child(addr, nid) for addr, nid in sorted(config.children.items())}
        self.stats = GatewayStats()
        self.link = SerialLink(opener or url_opener(config.port, config.baudrate), name=self.gw,
                               on_state=self._port_state, min_backoff=config.min_backoff,
                               max_backoff=config.max_backoff)
        self.bus = BusMaster(self.link, reply_timeout=config.reply_timeout, attempts=config.attempts)
        self.commands = GatewayCommands(self)
        self.downloads = Downloads(self)
        self.line = LinePlayer(self)
        self.mqtt: AsyncMqttClient | None = None
        self.groups_subscribed: set[str] = set()
        self._boot = time.monotonic()
        self._hb_seq = 0
        self._next_hb = self._next_tel = 0.0
        self._running = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._handles: set[asyncio.TimerHandle] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        will = Will(self.topics.state(self.gw), self._state_payload(p.NodeStatus.OFFLINE))
        self.mqtt = AsyncMqttClient(self.gw, self.broker, will=will, on_message=self._on_message,
                                    on_connect=self._on_connect, min_backoff=1.0, max_backoff=60.0)
        self._running = True
        self.link.start()
        self.mqtt.start()
        self.spawn(self._poll_loop(), "poll")
        self.spawn(self._ticker(), "tick")

    async def stop(self) -> None:
        """Clean shutdown: relays open, children marked offline, state ``shutdown``, DISCONNECT."""
        self._running = False  # nothing new starts (polls, playback)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.line.shutdown()
        await self._halt_tasks()
        mqtt, self.mqtt = self.mqtt, None
        if mqtt is not None:
            if mqtt.is_connected:
                for child in self.children.values():
                    with contextlib.suppress(MqttError, TimeoutError):
                        await mqtt.publish(self.topics.state(child.node_id), self._child_payload(
                            child, p.NodeStatus.OFFLINE, REASON_GATEWAY_SHUTDOWN), retain=True, timeout=2)
            await mqtt.stop(final=(self.topics.state(self.gw), self._state_payload(p.NodeStatus.SHUTDOWN)))
        await self.link.stop()

    async def kill(self) -> None:
        """Power loss: the MQTT link just drops (the broker publishes the gateway's last-will)."""
        self._running = False
        mqtt, self.mqtt = self.mqtt, None
        if mqtt is not None:
            await mqtt.kill()
        await self._halt_tasks()
        self.line.reset()
        await self.link.stop()

    async def _halt_tasks(self) -> None:
        self._running = False
        for h in self._handles:
            h.cancel()
        self._handles.clear()
        self.downloads.clear()
        me = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not me]
        for t in tasks:
            t.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            if pending:
                logger.error("%s: %d tasks did not stop: %s", self.gw, len(pending),
                             [t.get_name() for t in pending])

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.gw}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def later(self, delay: float, fn: Callable[..., object], *args: object) -> asyncio.TimerHandle:
        holder: list[asyncio.TimerHandle] = []

        def run() -> None:
            self._handles.discard(holder[0])
            fn(*args)

        holder.append(asyncio.get_running_loop().call_later(delay, run))
        self._handles.add(holder[0])
        return holder[0]

    @property
    def running(self) -> bool:
        return self._running

    def clock_ms(self) -> int:
        return p.now_ms()

    def uptime_s(self) -> int:
        return int(time.monotonic() - self._boot)

    # ------------------------------------------------------------------ MQTT out

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> bool:
        mqtt = self.mqtt
        if mqtt is None or not mqtt.is_connected:
            self.stats.publish_dropped += 1
            return False
        try:
            mqtt.publish_nowait(topic, payload, qos=qos, retain=retain)
        except MqttError as exc:
            self.stats.publish_dropped += 1
            logger.debug("%s: publish to %s dropped: %s", self.gw, topic, exc)
            return False
        return True

    def _state_payload(self, status: p.NodeStatus, reason: str = "") -> bytes:
        port = ("up" if self.link.is_up else "down") if status == p.NodeStatus.ONLINE else ""
        return p.encode(GatewayState(
            node_id=self.gw, status=status, session=self.session, fw=self.cfg.fw, hw="serial-gateway",
            reason=reason, children=list(self.children), port=port,
            port_error="" if self.link.is_up or not port else self.link.last_error,
        ))

    def _child_payload(self, child: Child, status: p.NodeStatus, reason: str = "") -> bytes:
        fw = child.board.fw_version if child.board is not None else ""
        return p.encode(ChildState(node_id=child.node_id, status=status, session=child.session, fw=fw,
                                   hw=f"serial:{child.addr}", reason=reason, gateway=self.gw))

    def ack(self, child: Child, bc: str, state: p.AckState, reason: str = "",
            have: int | None = None) -> None:
        if state in (p.AckState.PLAYED, p.AckState.FAILED):
            child.finish(bc, state, reason)
        msg = p.Ack(ts=self.clock_ms(), node_id=child.node_id, bc=bc, state=state, reason=reason, have=have)
        if self.publish(self.topics.ack(child.node_id), p.encode(msg), qos=1):
            self.stats.acks_sent += 1
        logger.debug("%s: ack %s %s %s %s", self.gw, child.node_id, bc, state.value, reason)

    def bad(self, topic: str, why: object) -> None:
        self.stats.payload_errors += 1
        logger.warning("%s: ignored bad payload on %s: %s", self.gw, topic, why)

    def _send_heartbeats(self) -> None:
        hb = p.Heartbeat(node_id=self.gw, session=self.session, seq=self._hb_seq, uptime_s=self.uptime_s(),
                         playing=self.line.playing)
        if self.publish(self.topics.heartbeat(self.gw), p.encode(hb), qos=0):
            self._hb_seq += 1
        for child in self.children.values():
            if child.online and child.board is not None:
                hb = p.Heartbeat(node_id=child.node_id, session=child.session, seq=child.hb_seq,
                                 uptime_s=child.board.uptime_s, playing=child.playing)
                if self.publish(self.topics.heartbeat(child.node_id), p.encode(hb), qos=0):
                    child.hb_seq += 1

    def send_telemetry(self, child: Child | None = None) -> None:
        """One child's telemetry, or (None) the gateway's own and every online child's."""
        if child is not None:
            b = child.board
            if child.online and b is not None:
                tel = p.Telemetry(node_id=child.node_id, power=b.power, volume=b.volume,
                                  playing=child.playing, uptime_s=b.uptime_s, faults=b.fault_codes)
                self.publish(self.topics.telemetry(child.node_id), p.encode(tel), qos=0)
            return
        d, bus, port = self.link.decoder.stats, self.bus.stats, self.link.stats
        serial = {"port_up": self.link.is_up, "port_error": self.link.last_error, "opens": port.opens,
                  "open_failures": port.open_failures, "losses": port.losses, "frames": d.frames,
                  "crc_errors": d.crc_errors, "format_errors": d.format_errors, "requests": bus.requests,
                  "retries": bus.retries, "timeouts": bus.timeouts, "naks": bus.naks}
        tel = GatewayTelemetry(node_id=self.gw, playing=self.line.playing, uptime_s=self.uptime_s(),
                               faults=[] if self.link.is_up else [FAULT_SERIAL_PORT], serial=serial)
        self.publish(self.topics.telemetry(self.gw), p.encode(tel), qos=0)
        for c in self.children.values():
            self.send_telemetry(c)

    # ------------------------------------------------------------------ MQTT in

    async def _on_connect(self) -> None:
        mqtt = self.mqtt
        if mqtt is None:
            return
        self.publish(self.topics.state(self.gw), self._state_payload(p.NodeStatus.ONLINE), qos=1, retain=True)
        t = self.topics
        subs = [t.cmd(self.gw), t.controller_state()]
        for nid in self.children:
            subs += [t.config(nid), t.cmd(nid), f"{t.prefix}/node/{nid}/bcast/+/+"]
        mqtt.subscribe(subs)
        self.groups_subscribed.clear()
        self._apply_groups()
        for child in self.children.values():
            if child.status in ("online", "offline"):
                status = p.NodeStatus.ONLINE if child.online else p.NodeStatus.OFFLINE
                self.publish(t.state(child.node_id), self._child_payload(child, status, child.reason),
                             qos=1, retain=True)
        self._next_hb = self._next_tel = 0.0  # heartbeats and telemetry right away
        logger.info("%s: connected to MQTT %s (%d children)", self.gw, self.broker, len(self.children))

    def _apply_groups(self) -> None:
        mqtt = self.mqtt
        if mqtt is None or not mqtt.is_connected:
            return
        wanted = {g for c in self.children.values() for g in c.groups}
        added, removed = sorted(wanted - self.groups_subscribed), sorted(self.groups_subscribed - wanted)
        if removed:
            mqtt.unsubscribe([x for g in removed for x in self.topics.group_subscriptions(g)])
        if added:
            mqtt.subscribe([x for g in added for x in self.topics.group_subscriptions(g)])
        self.groups_subscribed = wanted

    def members(self, group: str) -> list[Child]:
        return [c for c in self.children.values() if group in c.groups]

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        self.stats.msgs_in += 1
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
            child = self.children.get(sid) if scope == "node" else None
            if leaf == "config" and child is not None:
                self._on_config(child, topic, payload)
            elif leaf == "cmd" and scope == "node" and sid == self.gw:
                self.commands.on_gateway_command(topic, payload)
            elif leaf == "cmd":
                targets = [child] if child is not None else self.members(sid) if scope == "group" else []
                self.commands.on_command(targets, topic, payload)
            return
        if len(parts) == 5 and parts[0] in ("node", "group") and parts[2] == "bcast" and p.valid_id(parts[3]):
            scope, sid, _, bc, kind = parts
            one = self.children.get(sid) if scope == "node" else None
            targets = ([one] if one is not None else []) if scope == "node" else self.members(sid)
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
            self.bad(topic, exc)
            return
        if cfg.node_id != child.node_id:
            self.bad(topic, f"config names node {cfg.node_id!r}")
            return
        child.groups = [g for g in cfg.groups if p.valid_id(g)][:64]
        child.volume = cfg.volume
        self._apply_groups()
        if child.online and child.board is not None and child.board.volume != cfg.volume:
            self.spawn(self._apply_volume(child), f"volume-{child.node_id}")

    async def _apply_volume(self, child: Child) -> None:
        if child.volume is None:
            return
        with contextlib.suppress(SerialLinkError):
            self.update_board(child, await self.bus.request(child.addr, Cmd.VOLUME, child.volume))

    # ------------------------------------------------------------------ the serial side

    def _port_state(self, up: bool, error: str) -> None:
        if up:
            logger.info("%s: serial port %s is up", self.gw, self.cfg.port)
        else:
            self.stats.port_faults += 1
            logger.warning("%s: serial port %s is down: %s", self.gw, self.cfg.port, error)
            for child in self.children.values():
                if child.status != "offline":
                    self.set_status(child, "offline", REASON_PORT_DOWN)
        self.publish(self.topics.state(self.gw), self._state_payload(p.NodeStatus.ONLINE), qos=1, retain=True)
        self.send_telemetry()

    async def _poll_loop(self) -> None:
        while self._running:  # a service loop: stop()/kill() end it
            started = time.monotonic()
            if self.link.is_up:
                for child in list(self.children.values()):
                    await self._poll(child)
            await asyncio.sleep(max(0.01, self.cfg.poll_s - (time.monotonic() - started)))

    async def _poll(self, child: Child) -> None:
        try:  # an absent child costs one attempt per round, not three
            status = await self.bus.request(child.addr, Cmd.POLL, attempts=1 if not child.online else None)
        except BusTimeout:
            child.fails += 1
            if child.fails >= self.cfg.offline_after and child.status in ("online", "unknown"):
                self.set_status(child, "offline", REASON_NO_RESPONSE)
            return
        except (BusNak, PortDown):
            return
        self.update_board(child, status)
        if status.relay and not child.playing:  # a relay left closed (e.g. a lost RELAY 0): open it
            with contextlib.suppress(SerialLinkError):
                self.update_board(child, await self.bus.request(child.addr, Cmd.RELAY, 0))

    def update_board(self, child: Child, status: BoardStatus) -> None:
        """A reply from the child: it is alive; publish what changed."""
        prev, child.board, child.fails = child.board, status, 0
        if prev is not None and status.uptime_s < prev.uptime_s and child.status != "shutdown":
            logger.info("%s: child %s restarted", self.gw, child.node_id)
            child.session = secrets.token_hex(4)
            child.status = "unknown"
        if not child.online:
            self.set_status(child, "online", "")
            if child.volume is not None and status.volume != child.volume:
                self.spawn(self._apply_volume(child), f"volume-{child.node_id}")
        elif prev is not None and (prev.power, prev.volume, prev.faults, prev.relay) != (
                status.power, status.volume, status.faults, status.relay):
            self.send_telemetry(child)

    def set_status(self, child: Child, status: str, reason: str) -> None:
        if status == "shutdown":
            child.session = secrets.token_hex(4)  # the board reboots: a new session follows
        child.status, child.reason = status, reason
        nstatus = {"online": p.NodeStatus.ONLINE, "shutdown": p.NodeStatus.SHUTDOWN}.get(
            status, p.NodeStatus.OFFLINE)
        logger.info("%s: child %s (address %d) is %s %s", self.gw, child.node_id, child.addr, status, reason)
        self.publish(self.topics.state(child.node_id), self._child_payload(child, nstatus, reason),
                     qos=1, retain=True)
        if status == "online":
            self.send_telemetry(child)

    async def connect(self, child: Child, bc: str, emergency: bool) -> str | None:
        """Close ``child``'s relay to the programme line: None, or why not ('power_off', ...)."""
        b = child.board
        if not child.online or b is None:
            return "unreachable"
        try:
            if not b.power:
                if not emergency:
                    return "power_off"
                b = await self.bus.request(child.addr, Cmd.POWER, 1)
            if b.input != Input.LINE:
                b = await self.bus.request(child.addr, Cmd.INPUT, Input.LINE)
            child.playing = bc
            self.update_board(child, await self.bus.request(child.addr, Cmd.RELAY, 1))
        except BusNak as exc:
            child.playing = ""
            logger.warning("%s: %s refused to switch on: %s", self.gw, child.node_id, exc)
            return "relay_fault"
        except (BusTimeout, PortDown):
            child.playing = ""
            return "unreachable"
        self.send_telemetry(child)
        return None

    async def disconnect(self, child: Child) -> None:
        """Open the child's relay (a failure is left to the poll loop, which opens stray relays)."""
        child.playing = ""
        try:
            self.update_board(child, await self.bus.request(child.addr, Cmd.RELAY, 0))
        except SerialLinkError as exc:
            logger.warning("%s: could not open the relay of %s: %s", self.gw, child.node_id, exc)
        self.send_telemetry(child)

    # ------------------------------------------------------------------ periodic work

    async def _ticker(self) -> None:
        period = max(0.05, min(0.5, self.cfg.heartbeat_s / 4))
        while self._running:  # a service loop: stop()/kill() end it
            await asyncio.sleep(period)
            try:
                self.tick()
            except Exception:
                logger.exception("%s: tick failed", self.gw)

    def tick(self) -> None:
        now = time.monotonic()
        if self.mqtt is not None and self.mqtt.is_connected:
            if now >= self._next_hb:
                self._next_hb = now + self.cfg.heartbeat_s
                self._send_heartbeats()
            if now >= self._next_tel:
                self._next_tel = now + self.cfg.telemetry_s
                self.send_telemetry()
        self.downloads.expire(self.clock_ms())
        self.line.expire_due()
        self.commands.prune(now)
