"""Where a unit's incoming messages go (docs/protocol.md §2–§4 topics), by topic.

:class:`Inbox` routes one message to the part that owns it: the exact per-node topics (config,
commands, the controller's state, clock replies) to their handlers, group commands to the command
desk when the unit is in the group, and broadcast traffic (``…/bcast/{bc}/manifest|data|live``,
to the node or a group it is in) to the downloads or the live receiver. A handler that raises is
logged and counted: one bad message never takes the unit down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from devices.protocol import Topics, valid_id
from firmware_sim.io import NodeStats

logger = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]


class Parts(Protocol):
    """What the inbox hands messages to."""

    def on_group_command(self, topic: str, payload: bytes) -> None: ...

    def in_group(self, group: str) -> bool: ...

    def on_manifest(self, topic: str, bc: str, payload: bytes) -> None: ...

    def on_chunk(self, bc: str, payload: bytes) -> None: ...

    def on_live(self, session: str, payload: bytes) -> None: ...


class Inbox:
    """One unit's message routing (see the module docstring)."""

    def __init__(self, node_id: str, topics: Topics, stats: NodeStats, exact: dict[str, Handler],
                 parts: Parts) -> None:
        self.node_id, self.topics, self.stats = node_id, topics, stats
        self._exact = exact
        self._parts = parts

    def handle(self, topic: str, payload: bytes) -> None:
        try:
            self._dispatch(topic, payload)
        except Exception:  # one bad message must never take the node down
            self.stats.handler_errors += 1
            logger.exception("%s: failed to handle a message on %s", self.node_id, topic)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        handler = self._exact.get(topic)
        if handler is not None:
            handler(topic, payload)
            return
        p = self._parts
        head = self.topics.prefix + "/"
        parts = topic[len(head):].split("/") if topic.startswith(head) else []
        in_group = len(parts) > 1 and parts[0] == "group" and p.in_group(parts[1])
        if len(parts) == 3 and parts[0] == "group" and parts[2] == "cmd":
            if in_group:
                p.on_group_command(topic, payload)
            return
        mine = len(parts) == 5 and (parts[0], parts[1]) in (("node", self.node_id), ("group", parts[1]))
        if mine and parts[2] == "bcast" and valid_id(parts[3]):
            bc, kind = parts[3], parts[4]
            if kind == "manifest":
                p.on_manifest(topic, bc, payload)
                return
            if kind == "data":
                p.on_chunk(bc, payload)
                return
            if kind == "live" and (parts[0] == "node" or in_group):
                p.on_live(bc, payload)
                return
        self.stats.unknown_topics += 1
        logger.debug("%s: message on unexpected topic %s", self.node_id, topic)
