"""What a part of a simulated node may do: the :class:`NodeIO` port, and the node's counters.

The parts of a :class:`~firmware_sim.node.SimNode` (downloads, commands, live audio, telemetry,
group membership) never see the node itself; they get a NodeIO: publish a message, send an ack
(which also keeps the finished-broadcast memory), report a bad payload, ask for telemetry "on
change", read the clocks, start a timer or a task that power loss cancels. The one
implementation is :class:`firmware_sim.runtime.NodeRuntime`; tests hand in a fake.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from devices.protocol import AckState, FinishedLog, Topics
from firmware_sim.faults import Faults


@dataclass
class NodeStats:
    """Counters of one node (what a test or ``loaphuong sim`` reports)."""

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


class Timer(Protocol):
    """A pending :meth:`NodeIO.later` call."""

    def cancel(self) -> None: ...


class NodeIO(Protocol):
    """All a part of a simulated node may do (the node hands each part this, never itself)."""

    @property
    def node_id(self) -> str: ...

    @property
    def topics(self) -> Topics: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def stats(self) -> NodeStats: ...

    @property
    def finished(self) -> FinishedLog:
        """"Non-volatile": bc → final (state, reason); survives power loss."""
        ...

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> bool:
        """Send now (or after the fault's network delay); False if it could not go out."""
        ...

    def ack(self, bc: str, state: AckState, reason: str = "", have: int | None = None, *,
            attention: str = "", started_at: int | None = None) -> None:
        """The broadcast's ack on the node's ack topic (a final state is also remembered);
        ``attention``: what an emergency's local tone did; ``started_at``: when a broadcast playing
        or played began sounding, on the controller's clock (docs/protocol.md §3)."""
        ...

    def bad(self, topic: str, why: object) -> None:
        """Count and log a payload that breaks the contract."""
        ...

    def changed(self) -> None:
        """Something telemetry reports changed: telemetry soon (coalesced)."""
        ...

    def clock_ms(self) -> int:
        """The node's own clock (ms)."""
        ...

    def controller_ms(self) -> float:
        """The controller's clock as this node estimates it (expiry instants are on it)."""
        ...

    def clock_synced(self) -> bool:
        """True once the node has a clock-sync sample (before it, its estimate is its own clock)."""
        ...

    def uptime_s(self) -> int: ...

    def later(self, delay: float, fn: Callable[..., object], *args: object) -> Timer:
        """Call ``fn(*args)`` after ``delay`` seconds unless the node loses power first."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a task that power loss cancels."""
        ...
