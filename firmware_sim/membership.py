"""Subscriptions and the retained config of a simulated node (docs/protocol.md §1).

:class:`Membership` subscribes the node's own topics at every connect, joins the groups of its
retained config (before the first config: the groups it was built with), follows config
changes (groups added are subscribed, groups removed unsubscribed; the volume goes to the
amplifier) and knows which groups the broker has acknowledged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from devices.mqtt import AsyncMqttClient
from devices.protocol import NodeConfig, PayloadError, config_groups, decode, valid_id
from devices.subscribe import Reachable
from firmware_sim.io import NodeIO

logger = logging.getLogger(__name__)

SubAck = asyncio.Future[list[int]] | None


class Membership:
    """The topics one node listens to (see the module docstring)."""

    def __init__(self, io: NodeIO, *, initial_groups: list[str], on_volume: Callable[[int], None],
                 on_reachable: Callable[[], None] = lambda: None) -> None:
        self._io = io
        self.initial_groups = [g for g in initial_groups if valid_id(g)]
        self._on_volume = on_volume
        #: §1: every subscription granted after the broker refused some: publish the birth again
        self._reach = Reachable(on_reachable)
        self.config: NodeConfig | None = None
        self.requested: set[str] = set()
        self.subscribed: set[str] = set()
        self._link: AsyncMqttClient | None = None

    def in_group(self, group: str) -> bool:
        return group in self.requested

    def connected(self, link: AsyncMqttClient) -> list[SubAck]:
        """Subscribe the node's topics and its groups; returns the SUBACK futures."""
        self._link = link
        io = self._io
        own = io.topics.node_subscriptions(io.node_id)
        waits = [link.subscribe(own)]
        self._reach.connected()
        self._reach.insist(link, own, waits[0], "its own topics")
        self.requested.clear()
        self.subscribed.clear()
        groups = self.config.groups if self.config is not None else self.initial_groups
        return waits + self.apply([g for g in groups if valid_id(g)])

    def reset(self) -> None:
        """Power loss: no link, no subscriptions (the config stays: it is retained)."""
        self._link = None
        self.requested.clear()
        self.subscribed.clear()

    def apply(self, groups: list[str]) -> list[SubAck]:
        """Subscribe added groups, unsubscribe removed ones; returns the SUBACK futures."""
        link = self._link
        wanted = set(groups)
        removed = self.requested - wanted
        added = sorted(wanted - self.requested)
        futs: list[SubAck] = []
        if link is None or not link.is_connected:
            return futs
        topics = self._io.topics
        if removed:
            link.unsubscribe([t for g in sorted(removed) for t in topics.group_subscriptions(g)])
            for g in removed:
                self._reach.forget(f"group {g}")
            self.requested -= removed
            self.subscribed -= removed
        for g in added:
            wanted_topics = topics.group_subscriptions(g)
            fut = link.subscribe(wanted_topics)
            self.requested.add(g)
            self._reach.insist(link, wanted_topics, fut, f"group {g}",
                               on_granted=functools.partial(self._granted, g))
            futs.append(fut)
        if added or removed:
            logger.debug("%s: groups +%s -%s", self._io.node_id, added, sorted(removed))
        return futs

    def _granted(self, group: str) -> None:
        """Every topic of ``group`` granted (refusals are retried: devices/unit_link.py insist)."""
        if group in self.requested:
            self.subscribed.add(group)

    def on_config(self, topic: str, payload: bytes) -> None:
        io = self._io
        if not payload:
            logger.info("%s: retained config cleared; keeping the current settings", io.node_id)
            return
        try:
            cfg = decode(NodeConfig, payload)
        except PayloadError as exc:
            io.bad(topic, exc)
            return
        if cfg.node_id != io.node_id:
            io.bad(topic, f"config names node {cfg.node_id!r}")
            return
        groups = config_groups(cfg)
        if len(groups) != len(cfg.groups):
            io.bad(topic, "invalid or too many group ids in config (skipped)")
        self.config = cfg
        self._on_volume(cfg.volume)
        self.apply(groups)
