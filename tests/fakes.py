"""Broker-free stand-ins for the controller's services: a :class:`FakeUnitBus` and a few helpers.

:class:`FakeUnitBus` implements :class:`devices.link.UnitBus` in memory. It records every publish
and every command (correlation ids are made by the real :class:`devices.replies.ReplyRouter`, so
replies are routed exactly as on the real link), and plays the units' side: :meth:`deliver` hands
a node message to the handlers registered with ``on()``, :meth:`answer` a unit's reply to the
command's sender, :meth:`connect` / :meth:`disconnect` the broker link coming and going.

Tests wait with :func:`until` (a condition and a deadline, never a bare sleep).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from devices import protocol as p
from devices.link import ConnectCallback, Handler, Remover, SentCommand, UnitBus
from devices.mqtt import MqttError
from devices.replies import ReplyHandler, ReplyRouter


@dataclass(frozen=True)
class Published:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class Sent:
    """One ``command()``: to these scopes, with the id the bus made."""

    id: str
    name: str
    args: dict[str, Any]
    scopes: tuple[p.AudioScope, ...]
    expires_at: int


class FakeUnitBus:
    """A :class:`devices.link.UnitBus` without a broker (see the module docstring)."""

    def __init__(self, prefix: str = p.DEFAULT_PREFIX, *, connected: bool = True) -> None:
        self.topics = p.Topics(prefix)
        self.connected = connected
        self.router = ReplyRouter()
        self.published: list[Published] = []
        self.commands: list[Sent] = []
        self._handlers: dict[str, list[Handler]] = {leaf: [] for leaf in p.NODE_LEAVES if leaf != "resp"}
        self._on_connect: list[ConnectCallback] = []

    # ------------------------------------------------------------------ UnitBus

    def on(self, leaf: str, handler: Handler) -> Remover:
        if leaf not in self._handlers:
            raise ValueError(f"no handlers on {leaf!r} (replies go to command()'s on_reply)")
        self._handlers[leaf].append(handler)
        return lambda: self._handlers[leaf].remove(handler) if handler in self._handlers[leaf] else None

    def on_connect(self, callback: ConnectCallback) -> Remover:
        self._on_connect.append(callback)
        return lambda: self._on_connect.remove(callback) if callback in self._on_connect else None

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self.publish_nowait(topic, payload, qos=qos, retain=retain)

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        if not self.connected:
            raise MqttError("not connected (fake bus)")
        self.published.append(Published(topic, payload, qos, retain))
        return len(self.published)

    def reply_now(self, topic: str, payload: bytes) -> None:
        self.publish_nowait(topic, payload, qos=0)

    def command(self, scopes: Sequence[p.AudioScope], name: str, args: Mapping[str, Any], *,
                expires_at: int, on_reply: ReplyHandler | None = None) -> SentCommand:
        cmd_id, close = self.router.open(expires_at, on_reply)
        sent = SentCommand(cmd_id, close=close)
        self.commands.append(Sent(cmd_id, name, dict(args), tuple(scopes), expires_at))
        if not self.connected:
            sent.unsent.update({s.id: "not connected (fake bus)" for s in scopes})
        return sent

    async def command_acked(self, scopes: Sequence[p.AudioScope], name: str, args: Mapping[str, Any], *,
                            expires_at: int, on_reply: ReplyHandler | None = None) -> SentCommand:
        if not self.connected:
            raise MqttError("not connected (fake bus)")
        return self.command(scopes, name, args, expires_at=expires_at, on_reply=on_reply)

    # ------------------------------------------------------------------ the units' side

    def deliver(self, leaf: str, node_id: str, msg: Any) -> None:
        """A valid message from ``node_id`` on ``leaf`` (state, heartbeat, ack, repair, ...)."""
        for handler in list(self._handlers[leaf]):
            handler(node_id, msg)

    def heartbeat(self, node_id: str, session: str = "fake0001", seq: int = 1) -> None:
        """``node_id`` is alive (what presence needs to call it online)."""
        self.deliver("heartbeat", node_id, p.Heartbeat(node_id=node_id, session=session, seq=seq))

    def ack(self, node_id: str, bc: str, state: p.AckState, reason: str = "", *,
            started_at: int | None = None) -> None:
        self.deliver("ack", node_id, p.Ack(node_id=node_id, bc=bc, state=state, reason=reason,
                                           started_at=started_at))

    def answer(self, cmd_id: str, node_id: str, status: str = "ok", error: str = "", **data: Any) -> None:
        """``node_id``'s reply to command ``cmd_id``, routed as the real link routes it."""
        self.router.route(node_id, p.CommandResponse(id=cmd_id, node_id=node_id, status=status,  # type: ignore[arg-type]
                                                     error=error, data=data))

    async def connect(self) -> None:
        """The broker link is (back) up: run every on_connect callback, as the real link does."""
        self.connected = True
        for cb in list(self._on_connect):
            res = cb()
            if inspect.isawaitable(res):
                await res

    def disconnect(self) -> None:
        self.connected = False

    # ------------------------------------------------------------------ what was sent

    def sent(self, name: str) -> list[Sent]:
        """The commands called ``name``, in order."""
        return [c for c in self.commands if c.name == name]

    def on_topic(self, suffix: str) -> list[Published]:
        """Publishes whose topic ends with ``suffix`` (e.g. ``/manifest``)."""
        return [m for m in self.published if m.topic.endswith(suffix)]


def _is_a_unit_bus(bus: FakeUnitBus) -> UnitBus:
    return bus  # type-checked: the fake keeps the Protocol's shape


async def until(cond: Callable[[], Any], what: str, timeout_s: float = 30.0, every_s: float = 0.01) -> None:
    """Wait until ``cond()`` is true, polling every ``every_s``; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(every_s)
