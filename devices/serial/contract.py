"""The MQTT side of a serial gateway (docs/protocol.md §7.5): its settings, its children, and
the few fields it adds to the payloads of devices/protocol.py.

Every addition is an extra key of an existing payload, so readers that do not know about
gateways ignore it (docs/protocol.md: unknown keys are ignored).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from devices import protocol as p
from devices.serial.wire import BoardStatus, valid_addr

#: Telemetry fault code of a gateway whose serial port is down (docs/protocol.md §7.5).
FAULT_SERIAL_PORT = "serial_port"
#: State ``reason`` of a child that does not answer polls / behind a port that is down.
REASON_NO_RESPONSE = "no_response"
REASON_PORT_DOWN = "serial_port"
REASON_GATEWAY_SHUTDOWN = "gateway_shutdown"


class GatewayState(p.NodeState):
    """``{p}/node/{gw}/state`` of a gateway: a NodeState plus the children it speaks for.

    The last-will carries ``children`` too, so a controller that sees the gateway die knows
    whose presence it can no longer vouch for.
    """

    children: list[p.Id] = Field(default_factory=list, max_length=247)
    port: Literal["up", "down", ""] = Field(default="", description="serial port, '' in a will")
    port_error: str = ""


class ChildState(p.NodeState):
    """``{p}/node/{child}/state`` published by the gateway on behalf of a child."""

    gateway: str = Field(default="", description="id of the gateway that speaks for this node")


class GatewayTelemetry(p.Telemetry):
    """The gateway's own telemetry: ``faults`` has ``serial_port`` while the port is down."""

    serial: dict[str, Any] = Field(default_factory=dict, description="line counters")


def child_id(gateway_id: str, addr: int) -> str:
    """Default node id of the child at ``addr``: ``gw1`` + 5 -> ``gw1-a05``."""
    return f"{gateway_id}-a{addr:02d}"


@dataclass
class GatewayConfig:
    gateway_id: str
    port: str  # a device path (/dev/ttyUSB0, a pty, a udev symlink) or a pyserial URL
    children: dict[int, str]  # address -> node id
    baudrate: int = 9600
    prefix: str = p.DEFAULT_PREFIX
    poll_s: float = 1.0  # each child is polled this often
    offline_after: int = 3  # consecutive unanswered polls before a child is offline
    reply_timeout: float = 0.2
    attempts: int = 3
    heartbeat_s: float = 15.0
    telemetry_s: float = 60.0
    repair_idle_s: float = 2.0
    time_scale: float = 1.0  # playback lasts duration * repeat * time_scale (tests: < 1)
    play_dir: Path | None = None  # "the station line": played files are written here
    storage_kb: int = 64 * 1024
    min_backoff: float = 0.5  # port reopen backoff
    max_backoff: float = 30.0
    fw: str = "gw-1.0"

    def __post_init__(self) -> None:
        if not p.valid_id(self.gateway_id):
            raise ValueError(f"invalid gateway id {self.gateway_id!r}")
        if not self.children:
            raise ValueError("a gateway needs at least one child")
        ids = list(self.children.values())
        for addr, node_id in self.children.items():
            if not valid_addr(addr):
                raise ValueError(f"child address {addr} outside 1..247")
            if not p.valid_id(node_id) or node_id == self.gateway_id:
                raise ValueError(f"invalid child node id {node_id!r}")
        if len(set(ids)) != len(ids):
            raise ValueError("two children share a node id")
        if self.poll_s <= 0 or self.offline_after < 1 or self.heartbeat_s <= 0 or self.telemetry_s <= 0:
            raise ValueError("poll_s, heartbeat_s, telemetry_s > 0 and offline_after >= 1 required")


@dataclass
class Child:
    """What the gateway knows about one child board, and its MQTT identity."""

    addr: int
    node_id: str
    session: str = field(default_factory=lambda: secrets.token_hex(4))
    status: str = "unknown"  # unknown (not polled yet) | online | offline
    reason: str = ""
    board: BoardStatus | None = None
    fails: int = 0
    groups: list[str] = field(default_factory=list)
    volume: int | None = None  # desired, from the retained config
    hb_seq: int = 0
    playing: str = ""  # broadcast whose audio this child's relay carries now
    #: docs/protocol.md §3: the child's last finished broadcasts (final ack re-sent, never replayed)
    finished: p.FinishedLog = field(default_factory=p.FinishedLog)

    @property
    def online(self) -> bool:
        return self.status == "online"

    def new_session(self) -> None:
        """The board restarted (or is about to): a new session, heartbeats counted from 0 again."""
        self.session = secrets.token_hex(4)
        self.hb_seq = 0
