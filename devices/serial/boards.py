"""The serial side of a gateway: its child boards, polled and switched (docs/protocol.md §7.5).

:class:`Boards` polls every child each ``poll_s`` (an absent one costs one attempt per round),
turns the replies into the child's MQTT presence (retained state online/offline/shutdown with
a reason, telemetry when power, volume, faults or relay change, heartbeats), applies the
volume of a child's config, opens a relay left closed, and switches a child's relay onto the
programme line for the line player (:class:`~devices.serial.io.Switchboard`) or runs one
request for the command answers (:class:`~devices.serial.io.BoardControl`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from devices import protocol as p
from devices.serial.contract import REASON_NO_RESPONSE, REASON_PORT_DOWN, Child, ChildState
from devices.serial.io import GatewayIO
from devices.serial.master import BusMaster, BusNak, BusTimeout
from devices.serial.port import PortDown, SerialLink, SerialLinkError
from devices.serial.wire import BoardStatus, Cmd, Input

logger = logging.getLogger(__name__)

_STATUS = {"online": p.NodeStatus.ONLINE, "shutdown": p.NodeStatus.SHUTDOWN}


class Boards:
    """The child boards on one serial line (see the module docstring)."""

    def __init__(self, io: GatewayIO, link: SerialLink, bus: BusMaster) -> None:
        self._io = io
        self._link = link
        self._bus = bus

    # ------------------------------------------------------------------ MQTT presence

    def child_payload(self, child: Child, status: p.NodeStatus, reason: str = "") -> bytes:
        fw = child.board.fw_version if child.board is not None else ""
        return p.encode(ChildState(node_id=child.node_id, status=status, session=child.session, fw=fw,
                                   hw=f"serial:{child.addr}", reason=reason, gateway=self._io.gateway_id))

    def publish_states(self) -> None:
        """After (re)connecting to MQTT: every child's known state again (retained)."""
        for child in self._io.children():
            if child.status in ("online", "offline"):
                status = p.NodeStatus.ONLINE if child.online else p.NodeStatus.OFFLINE
                self._io.publish(self._io.topics.state(child.node_id),
                                 self.child_payload(child, status, child.reason), qos=1, retain=True)

    def heartbeats(self) -> None:
        io = self._io
        for child in io.children():
            if child.online and child.board is not None:
                hb = p.Heartbeat(node_id=child.node_id, session=child.session, seq=child.hb_seq,
                                 uptime_s=child.board.uptime_s, playing=child.playing)
                if io.publish(io.topics.heartbeat(child.node_id), p.encode(hb), qos=0):
                    child.hb_seq += 1

    def send_telemetry(self, child: Child) -> None:
        b = child.board
        if child.online and b is not None:
            tel = p.Telemetry(node_id=child.node_id, power=b.power, volume=b.volume,
                              playing=child.playing, uptime_s=b.uptime_s, faults=b.fault_codes,
                              source="bulletin" if child.playing else "idle", fw=b.fw_version)
            self._io.publish(self._io.topics.telemetry(child.node_id), p.encode(tel), qos=0)

    def set_status(self, child: Child, status: str, reason: str) -> None:
        """Publish the child's retained state; a ``shutdown`` still carries the session it ends
        (the controller follows that session), the next ``online`` a new one."""
        child.status, child.reason = status, reason
        logger.info("%s: child %s (address %d) is %s %s", self._io.gateway_id, child.node_id, child.addr,
                    status, reason)
        self._io.publish(self._io.topics.state(child.node_id),
                         self.child_payload(child, _STATUS.get(status, p.NodeStatus.OFFLINE), reason),
                         qos=1, retain=True)
        if status == "shutdown":
            child.new_session()  # the board reboots: its next online state has a new session
        if status == "online":
            self.send_telemetry(child)

    def port_down(self) -> None:
        """The serial port failed: every child is offline (``serial_port``)."""
        for child in self._io.children():
            if child.status != "offline":
                self.set_status(child, "offline", REASON_PORT_DOWN)

    # ------------------------------------------------------------------ polling

    async def poll_loop(self) -> None:
        poll_s = self._io.config.poll_s
        while self._io.running:  # a service loop: stopping the gateway ends it
            started = time.monotonic()
            if self._link.is_up:
                for child in self._io.children():
                    await self._poll(child)
            await asyncio.sleep(max(0.01, poll_s - (time.monotonic() - started)))

    async def _poll(self, child: Child) -> None:
        try:  # an absent child costs one attempt per round, not three
            status = await self._bus.request(child.addr, Cmd.POLL, attempts=1 if not child.online else None)
        except BusTimeout:
            child.fails += 1
            if child.fails >= self._io.config.offline_after and child.status in ("online", "unknown"):
                self.set_status(child, "offline", REASON_NO_RESPONSE)
            return
        except (BusNak, PortDown):
            return
        self.update_board(child, status)
        if status.relay and not child.playing:  # a relay left closed (e.g. a lost RELAY 0): open it
            with contextlib.suppress(SerialLinkError):
                self.update_board(child, await self._bus.request(child.addr, Cmd.RELAY, 0))

    def update_board(self, child: Child, status: BoardStatus) -> None:
        """A reply from the child: it is alive; publish what changed."""
        prev, child.board, child.fails = child.board, status, 0
        if prev is not None and status.uptime_s < prev.uptime_s and child.status != "shutdown":
            logger.info("%s: child %s restarted", self._io.gateway_id, child.node_id)
            child.new_session()
            child.status = "unknown"
        if not child.online:
            self.set_status(child, "online", "")
            if child.volume is not None and status.volume != child.volume:
                self._io.spawn(self.apply_volume(child), f"volume-{child.node_id}")
        elif prev is not None and (prev.power, prev.volume, prev.faults, prev.relay) != (
                status.power, status.volume, status.faults, status.relay):
            self.send_telemetry(child)

    def configured(self, child: Child) -> None:
        """The child's config changed: apply its volume if the board differs."""
        if child.online and child.board is not None and child.board.volume != child.volume:
            self._io.spawn(self.apply_volume(child), f"volume-{child.node_id}")

    async def apply_volume(self, child: Child) -> None:
        if child.volume is None:
            return
        with contextlib.suppress(SerialLinkError):
            self.update_board(child, await self._bus.request(child.addr, Cmd.VOLUME, child.volume))

    # ------------------------------------------------------------------ BoardControl

    async def request(self, child: Child, cmd: Cmd, arg: int | None = None) -> BoardStatus:
        status = await self._bus.request(child.addr, cmd, arg)
        self.update_board(child, status)
        return status

    async def reboot(self, child: Child) -> None:
        await self._bus.request(child.addr, Cmd.RESET)
        self.set_status(child, "shutdown", "reboot")

    async def connect(self, child: Child, bc: str, emergency: bool) -> str | None:
        """Close ``child``'s relay to the programme line: None, or why not ('power_off', ...)."""
        b = child.board
        if not child.online or b is None:
            return "unreachable"
        try:
            if not b.power:
                if not emergency:
                    return "power_off"
                b = await self._bus.request(child.addr, Cmd.POWER, 1)
            if b.input != Input.LINE:
                b = await self._bus.request(child.addr, Cmd.INPUT, Input.LINE)
            child.playing = bc
            self.update_board(child, await self._bus.request(child.addr, Cmd.RELAY, 1))
        except BusNak as exc:
            child.playing = ""
            logger.warning("%s: %s refused to switch on: %s", self._io.gateway_id, child.node_id, exc)
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
            self.update_board(child, await self._bus.request(child.addr, Cmd.RELAY, 0))
        except SerialLinkError as exc:
            logger.warning("%s: could not open the relay of %s: %s", self._io.gateway_id, child.node_id, exc)
        self.send_telemetry(child)
