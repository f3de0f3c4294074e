"""The controller's MQTT link: birth/last-will, subscriptions, and a handler table per topic leaf.

Inbound node messages are validated against the wire contract here, once: a payload that
is oversize, not JSON (or pathological JSON: a 5,000-digit number, deep nesting), of another
protocol version, wrongly typed, or whose ``node_id`` differs from the topic's is dropped and
counted in ``rejected`` by reason and in ``rejected_by_node`` by unit; it is logged in one line,
at most once per unit per :data:`LOG_EVERY_S` (the count says how many were not logged).
A *retained* message on a unit's topic other than ``state`` (heartbeat, ack, resp, ...: never
retained by the protocol, docs/protocol.md §5) would be replayed at every reconnect, so it is
dropped as ``retained`` and cleared on the broker (an empty retained message, which the
controller's account may publish). Handlers receive parsed models only.

The controller's services never see this class: they get a :class:`UnitBus` (declared here, the
lower side of the boundary) and ask it to publish, to call them on a leaf, or to send a command.
:meth:`ControllerLink.command` makes the correlation id and routes every reply to its sender's
handler (:mod:`devices.replies`), so nobody parses another service's id prefix.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel

from devices import protocol as p
from devices.mqtt import AsyncMqttClient, Brokers, MqttError, Will
from devices.probe import BrokerProbe
from devices.replies import Remover, ReplyHandler, ReplyRouter, SentCommand
from devices.subscribe import insist

logger = logging.getLogger(__name__)

Handler = Callable[[str, Any], None]
"""``handler(node_id, model)`` for a node-owned topic leaf (state, heartbeat, ack, ...)."""
ConnectCallback = Callable[[], Awaitable[None] | None]

__all__ = ["ConnectCallback", "ControllerLink", "Handler", "Remover", "ReplyHandler", "SentCommand",
           "UnitBus"]

#: A unit's dropped messages are logged at most once per this many seconds (all are counted).
LOG_EVERY_S = 60.0
#: Units tracked in ``rejected_by_node`` (the broker ACL bounds them; this bounds the memory).
MAX_TRACKED = 10_000

_MODELS: dict[str, type[BaseModel]] = {
    "state": p.NodeState,
    "heartbeat": p.Heartbeat,
    "telemetry": p.Telemetry,
    "ack": p.Ack,
    "repair": p.RepairRequest,
    "resp": p.CommandResponse,
    "time": p.TimeRequest,
}


class UnitBus(Protocol):
    """What the controller's services need from the MQTT link to the units."""

    @property
    def topics(self) -> p.Topics: ...

    @property
    def connected(self) -> bool: ...

    def on(self, leaf: str, handler: Handler) -> Remover:
        """Call ``handler(node_id, model)`` for each valid message on a node leaf (not ``resp``:
        replies go to the sender of their command)."""
        ...

    def on_connect(self, callback: ConnectCallback) -> Remover:
        """Call ``callback()`` after every (re)connection."""
        ...

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish and wait for the broker's acknowledgement (raises MqttError)."""
        ...

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Queue a publish (raises MqttError when not connected)."""
        ...

    def reply_now(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 0 and write it to the socket at once (a time reply: its ``t2`` stamp is
        true only if nothing queues after it). Raises MqttError when not connected."""
        ...

    def command(self, scopes: Sequence[p.AudioScope], name: str, args: Mapping[str, Any], *,
                expires_at: int, on_reply: ReplyHandler | None = None) -> SentCommand:
        """Send command ``name`` once per scope (QoS 1, never retained) with a new correlation id;
        each unit's reply goes to ``on_reply``. Never raises: missed scopes are in ``unsent``."""
        ...

    async def command_acked(self, scopes: Sequence[p.AudioScope], name: str, args: Mapping[str, Any], *,
                            expires_at: int, on_reply: ReplyHandler | None = None) -> SentCommand:
        """:meth:`command`, waiting for the broker to acknowledge every publish (raises MqttError,
        the route closed)."""
        ...


class ControllerLink:
    """Owns the controller's MQTT client; other services register handlers and publish through it."""

    def __init__(self, broker: Brokers, *, prefix: str = p.DEFAULT_PREFIX,
                 client_id: str = "loaphuong-controller", refuse_duplicate: bool = False) -> None:
        self.topics = p.Topics(prefix)
        self.client_id = client_id  # names this controller (owner of its relays) among several
        self.session = secrets.token_hex(4)
        self.rejected: Counter[str] = Counter()
        self.rejected_by_node: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()
        self.audio_bytes_out = 0
        self.replies = ReplyRouter()
        self._handlers: dict[str, list[Handler]] = {leaf: [] for leaf in p.NODE_LEAVES if leaf != "resp"}
        self._on_connect: list[ConnectCallback] = []
        offline = p.ControllerState(status=p.NodeStatus.OFFLINE, session=self.session)
        self.client = AsyncMqttClient(
            client_id, broker,
            will=Will(self.topics.controller_state(), p.encode(offline)),
            on_message=self._dispatch, on_connect=self._connected,
            refuse_duplicate=refuse_duplicate,  # a duplicate id: stop connecting (devices/failover.py)
        )
        self.probe = BrokerProbe(self.topics.controller_probe(client_id),
                                 lambda t, b: self.client.publish_nowait(t, b, qos=0), lambda: self.connected)

    # -------------------------------------------------------------- wiring

    def on(self, leaf: str, handler: Handler) -> Remover:
        """Register ``handler(node_id, model)`` for a node-owned topic leaf (state, ack, ...); the
        result unregisters it. Replies (``resp``) go to their command's sender instead."""
        if leaf not in self._handlers:
            raise ValueError(f"unknown leaf {leaf!r}" if leaf != "resp" else
                             "replies go to the on_reply of command(), not to on('resp')")
        self._handlers[leaf].append(handler)
        return _remover(self._handlers[leaf], handler)

    def on_connect(self, callback: ConnectCallback) -> Remover:
        """Called after every (re)connection, after the birth and subscriptions."""
        self._on_connect.append(callback)
        return _remover(self._on_connect, callback)

    def start(self) -> None:
        self.client.start()
        self.probe.start()

    async def stop(self) -> None:
        await self.probe.stop()
        bye = p.ControllerState(status=p.NodeStatus.SHUTDOWN, session=self.session)
        await self.client.stop(final=(self.topics.controller_state(), p.encode(bye)))

    def broker_silent_s(self) -> float:
        """Seconds since the broker last passed our own probe back (devices/probe.py): how long
        this controller has not surely reached its units."""
        return self.probe.silent_s()

    def drop_outbox(self, why: str) -> int:
        """Forget every publish not yet acknowledged and end this connection (the next one starts
        empty): what a controller that gave its broadcasts up queued must not reach the units when
        its broker comes back. The number of publishes dropped."""
        return self.client.drop_outbox(why)

    @property
    def connected(self) -> bool:
        return self.client.is_connected

    # -------------------------------------------------------------- publish helpers

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self._count(topic, payload)
        await self.client.publish(topic, payload, qos=qos, retain=retain)

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        self._count(topic, payload)
        return self.client.publish_nowait(topic, payload, qos=qos, retain=retain)

    def reply_now(self, topic: str, payload: bytes) -> None:
        self.client.publish_nowait(topic, payload, qos=0)
        self.client.flush_soon()

    def command(self, scopes: Sequence[p.AudioScope], name: str, args: Mapping[str, Any], *,
                expires_at: int, on_reply: ReplyHandler | None = None) -> SentCommand:
        sent, body = self._open(name, args, expires_at, on_reply)
        for scope in scopes:
            try:
                self.publish_nowait(self.topics.command(scope), body, qos=1)
            except MqttError as exc:
                sent.unsent[scope.id] = str(exc)
                logger.error("%s command %s not sent to %s: %s", name, sent.id, scope.id, exc)
        return sent

    async def command_acked(self, scopes: Sequence[p.AudioScope], name: str, args: Mapping[str, Any], *,
                            expires_at: int, on_reply: ReplyHandler | None = None) -> SentCommand:
        sent, body = self._open(name, args, expires_at, on_reply)
        try:
            await asyncio.gather(*(self.publish(self.topics.command(s), body, qos=1) for s in scopes))
        except MqttError:
            sent.close()
            raise
        return sent

    def _open(self, name: str, args: Mapping[str, Any], expires_at: int,
              on_reply: ReplyHandler | None) -> tuple[SentCommand, bytes]:
        cmd_id, close = self.replies.open(expires_at, on_reply)
        body = p.encode(p.Command(id=cmd_id, name=name, args=dict(args), expires_at=expires_at))
        return SentCommand(cmd_id, close=close), body

    def _count(self, topic: str, payload: bytes) -> None:
        if "/bcast/" in topic:  # broadcast audio (manifests, chunks, repairs): the fan-out figure
            self.audio_bytes_out += len(payload) + len(topic) + 4

    # -------------------------------------------------------------- inbound

    async def _connected(self) -> None:
        birth = p.ControllerState(status=p.NodeStatus.ONLINE, session=self.session)
        topics = self.topics.controller_subscriptions()
        insist(self.client, topics, self.client.subscribe(topics, qos=1), "the units' topics")
        self.probe.on_connected()
        insist(self.client, [self.probe.topic], self.client.subscribe([self.probe.topic], qos=0), "the probe")
        await self.client.publish(self.topics.controller_state(), p.encode(birth), retain=True)
        logger.info("controller connected to %s (session %s)", self.client.broker, self.session)
        for cb in self._on_connect:
            try:
                res = cb()
                if res is not None:
                    await res
            except Exception:
                logger.exception("on_connect callback %r failed", cb)

    def _reject(self, reason: str, topic: str, detail: str, node_id: str = "") -> None:
        """Count a dropped message; log one line, at most once per unit per LOG_EVERY_S."""
        self.rejected[reason] += 1
        if node_id and (node_id in self.rejected_by_node or len(self.rejected_by_node) < MAX_TRACKED):
            self.rejected_by_node[node_id] += 1
        now = time.monotonic()
        if now - self._logged_at.get(node_id, -LOG_EVERY_S) < LOG_EVERY_S:
            self._unlogged[node_id] += 1
            return
        if len(self._logged_at) >= MAX_TRACKED:
            self._logged_at.clear()
        self._logged_at[node_id] = now
        more = self._unlogged.pop(node_id, 0)
        logger.warning("dropped message on %s: %s (%s)%s", topic, reason, detail[:200],
                       f"; {more} more from {node_id} not logged" if more else "")

    def _dispatch(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self.probe.topic:
            self.probe.echoed()
            return
        parsed = self.topics.parse_node_topic(topic)
        if parsed is None:
            return  # our own controller/state echo, or foreign topics
        node_id, leaf = parsed
        if not payload:
            return  # a cleared retained message (state, or one we cleared below)
        if retained and leaf != "state":
            self._reject("retained", topic, "a unit's retained message (only state is retained)", node_id)
            try:
                self.client.publish_nowait(topic, b"", qos=1, retain=True)  # not replayed again
            except MqttError as exc:
                logger.warning("could not clear the retained message on %s: %s", topic, exc)
            return
        try:
            model = p.decode(_MODELS[leaf], payload)
        except Exception as exc:  # noqa: BLE001 - PayloadError, or anything odd input may raise
            self._reject("invalid_payload", topic, str(exc) or type(exc).__name__, node_id)
            return
        if getattr(model, "node_id", node_id) != node_id:
            self._reject("node_id_mismatch", topic, f"payload says {model.node_id!r}", node_id)  # type: ignore[attr-defined]
            return
        if isinstance(model, p.CommandResponse):
            self.replies.route(node_id, model)
            return
        for handler in self._handlers[leaf]:
            try:
                handler(node_id, model)
            except Exception:
                self.rejected["handler_error"] += 1
                logger.exception("handler %r failed on %s", handler, topic)


def _remover(items: list[Any], item: Any) -> Remover:
    """A function that takes ``item`` out of ``items`` (once; later calls do nothing)."""

    def remove() -> None:
        if item in items:
            items.remove(item)

    return remove
