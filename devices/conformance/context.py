"""What the items of one run share: the harness, the options, what earlier items learned."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from devices.conformance.drill import Drill
from devices.conformance.harness import Bcast, Harness
from devices.conformance.link import KitLink
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
    link: KitLink | None = None  # the kit's port the unit connects through (link mode), or None
    drill: Drill | None = None  # the link drill, once run (items last_will, credentials)


#: (item id, docs/protocol.md section, title, the check)
Check = Callable[[Context, Result], Awaitable[None]]
Item = tuple[str, str, str, Check]


def clip(payload: bytes | str, n: int = 240) -> str:
    """A payload for the evidence, cut to ``n`` characters."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return text if len(text) <= n else text[:n] + f"… ({len(text)} chars)"


async def child_lacks(ctx: Context, r: Result, name: str, args: dict[str, object]) -> None:
    """§7.5: ``name`` is not one of a gateway child's commands: PASS when the child answers it as
    any unknown command (§2: error `unknown command`) and still answers a ping."""
    cmd_id, resp = await ctx.h.call(name, args)
    alive = await ctx.h.alive()
    r.note(f"§7.5: {name} is not a child's command; {cmd_id}: {clip(json.dumps(resp))}; "
           f"a ping after it {'answered' if alive else 'NOT answered'}")
    if not resp or resp.get("status") != "error" or resp.get("error") != "unknown command":
        r.failed(f"{name} to a gateway's child not answered error `unknown command` (§7.5, §2)")
    elif not alive:
        r.failed("the child stopped answering")
    else:
        r.passed()
