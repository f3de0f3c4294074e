"""What a part of the serial gateway may do: the :class:`GatewayIO` and :class:`Switchboard` ports.

The gateway's parts (:mod:`~devices.serial.audio` downloads, :mod:`~devices.serial.line` the
programme line, :mod:`~devices.serial.commands` the command answers) never see the gateway;
they get a GatewayIO (publish, per-child acks, bad payloads, clocks, timers and tasks that
stop with the gateway, the children by id) and, where they switch boards, a Switchboard
(:class:`~devices.serial.boards.Boards` implements it). The one GatewayIO is
:class:`devices.serial.runtime.GatewayRuntime`; tests hand in fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from devices import protocol as p
from devices.serial.contract import Child, GatewayConfig
from devices.serial.wire import BoardStatus, Cmd


class GatewayIO(Protocol):
    """All a part of the serial gateway may do (the gateway hands this, never itself)."""

    @property
    def gateway_id(self) -> str: ...

    @property
    def topics(self) -> p.Topics: ...

    @property
    def config(self) -> GatewayConfig: ...

    @property
    def running(self) -> bool:
        """False once the gateway is stopping: nothing new starts."""
        ...

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> bool:
        """Publish now; False (counted) if the MQTT link is down."""
        ...

    def ack(self, child: Child, bc: str, state: p.AckState, reason: str = "",
            have: int | None = None, attention: str = "") -> None:
        """The broadcast's ack on ``child``'s ack topic (a final state is remembered for it);
        ``attention``: what an emergency's tone did, on the ack answering its manifest."""
        ...

    def bad(self, topic: str, why: object) -> None:
        """Count and log a payload that breaks the contract."""
        ...

    def clock_ms(self) -> int: ...

    def uptime_s(self) -> int: ...

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task that stopping the gateway cancels."""
        ...

    def later(self, delay: float, fn: Callable[..., object], *args: object) -> asyncio.TimerHandle:
        """``fn(*args)`` after ``delay`` seconds unless the gateway stops first."""
        ...

    def child(self, node_id: str) -> Child | None:
        """The child with this node id, if the gateway speaks for it."""
        ...

    def children(self) -> list[Child]:
        """Every child the gateway speaks for, in address order."""
        ...

    def members(self, group: str) -> list[Child]:
        """The children whose config lists ``group``."""
        ...


class Switchboard(Protocol):
    """What the programme line needs of the boards: switch a child's relay on and off."""

    async def connect(self, child: Child, bc: str, emergency: bool) -> str | None:
        """Close ``child``'s relay to the line: None, or why not (unreachable, power_off, ...)."""
        ...

    async def disconnect(self, child: Child) -> None:
        """Open ``child``'s relay."""
        ...


class BoardControl(Switchboard, Protocol):
    """What the command answers need of the boards: one request, a reboot."""

    async def request(self, child: Child, cmd: Cmd, arg: int | None = None) -> BoardStatus:
        """One serial transaction; the reply's status is taken in (published if it changed)."""
        ...

    async def reboot(self, child: Child) -> None:
        """RESET the board; its state becomes ``shutdown``/``reboot`` until it answers again."""
        ...


__all__ = ["BoardControl", "GatewayIO", "Switchboard"]
