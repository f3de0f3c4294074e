"""Presence of serial-attached nodes: a dead gateway cannot vouch for its children.

A serial gateway publishes the state of each child board on the child's own topic, but
MQTT has only one last-will per connection: when the gateway dies, the broker publishes
the gateway's will, and the children's retained states still say ``online``. The gateway
therefore lists its children in its own state (birth and will alike, docs/protocol.md
§7.5). This module follows those lists: when a gateway's state is ``offline`` or
``shutdown``, each of its children is marked ``unknown`` at once (rather than after the
heartbeat timeout), and a child's ``online`` state or heartbeat that arrives while its
gateway is down (a retained copy replayed after a controller restart, a message that
crossed the will) does not bring it back. The gateway's next birth is followed by fresh
states of its children, which presence then takes as usual.

A list in a unit's state proves nothing: any unit could name any ward's units. A gateway
vouches only for the children it was **provisioned** with (``Settings.gateways``,
:mod:`controller.fleet.gateway_settings`); a unit that is not a provisioned gateway, and the
children a gateway names beyond its own, are ignored and counted in ``refused``.

Wiring: ``devices.protocol.NodeState`` carries ``children``; the app creates
``GatewayPresence(link, presence, settings.gateways)`` right after ``Presence(...)`` so that
its handlers run after presence's own.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from controller.fleet.presence import Presence
from devices import protocol as p
from devices.link import UnitBus

logger = logging.getLogger(__name__)

#: More children than any RS-485 line can carry (addresses 1-247): a list beyond is refused.
MAX_CHILDREN = 247


class GatewayPresence:
    def __init__(self, link: UnitBus, presence: Presence,
                 provisioned: Mapping[str, Sequence[str]] | None = None) -> None:
        self.presence = presence
        #: gateway id -> the children it may speak for (provisioned by the ward's operator)
        self.provisioned = {gw: set(children) for gw, children in (provisioned or {}).items()}
        #: gateway id -> the children it last said it speaks for (within its provisioned ones)
        self.children: dict[str, list[str]] = {}
        #: gateways whose last state was offline/shutdown
        self.down: set[str] = set()
        #: gateway claims ignored, per claiming unit (not a gateway, or children not its own)
        self.refused: Counter[str] = Counter()
        self._gateway_of: dict[str, str] = {}
        link.on("state", self._on_state)
        link.on("heartbeat", self._on_heartbeat)

    def gateway_of(self, node_id: str) -> str | None:
        return self._gateway_of.get(node_id)

    def _on_state(self, node_id: str, msg: Any) -> None:
        children = getattr(msg, "children", None)
        if isinstance(children, list) and children:
            mine = self.provisioned.get(node_id, set())
            own = [c for c in children[:MAX_CHILDREN] if c in mine]
            if len(own) < len(children):
                self._refuse(node_id, len(children) - len(own))
            if own:
                self._gateway_state(node_id, msg.status, own)
                return
        if msg.status == p.NodeStatus.ONLINE:
            self._distrust(node_id, "state")

    def _refuse(self, node_id: str, count: int) -> None:
        first = node_id not in self.refused
        self.refused[node_id] += 1
        if first:  # once per unit: the count says how often
            logger.warning("unit %s claims to speak for %d unit(s) it is not the provisioned gateway of; "
                           "ignored (Settings.gateways, docs/protocol.md §7.5)", node_id, count)

    def _on_heartbeat(self, node_id: str, msg: Any) -> None:
        self._distrust(node_id, "heartbeat")

    def _gateway_state(self, gw: str, status: p.NodeStatus, children: list[str]) -> None:
        for old in self.children.get(gw, []):
            if self._gateway_of.get(old) == gw:
                del self._gateway_of[old]
        self.children[gw] = children
        for child in children:
            self._gateway_of[child] = gw
        if status == p.NodeStatus.ONLINE:
            self.down.discard(gw)
            return
        self.down.add(gw)
        logger.warning("gateway %s is %s: its %d children are unknown", gw, status.value, len(children))
        for child in children:
            self._mark_unknown(child, f"gateway {gw} is {status.value}")

    def _distrust(self, node_id: str, what: str) -> None:
        gw = self._gateway_of.get(node_id)
        if gw is not None and gw in self.down:
            self._mark_unknown(node_id, f"{what} while gateway {gw} is down")

    def _mark_unknown(self, node_id: str, detail: str) -> None:
        self.presence.mark_unknown(node_id, detail)
