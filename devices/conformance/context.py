"""What the items of one run share: the harness, the options, what earlier items learned."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from devices.conformance.harness import Bcast, Harness
from devices.conformance.report import Result


@dataclass
class Context:
    h: Harness
    heartbeat_s: float = 15.0
    reboot: bool = True
    session: str = ""  # the session of the unit's birth
    station_host: str = ""  # the address the unit reaches the kit's test station at ('' = guess)
    gateway: str = ""  # the unit is a child of this serial gateway (§7.5: its birth names it)
    volume: int = 70  # the volume the kit's config sets
    verified: Bcast | None = None  # a broadcast the unit verified and holds (for `play`)
    offered: list[Bcast] = field(default_factory=list)  # withdrawn at the end


#: (item id, docs/protocol.md section, title, the check)
Check = Callable[[Context, Result], Awaitable[None]]
Item = tuple[str, str, str, Check]


def clip(payload: bytes | str, n: int = 240) -> str:
    """A payload for the evidence, cut to ``n`` characters."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return text if len(text) <= n else text[:n] + f"… ({len(text)} chars)"
