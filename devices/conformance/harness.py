"""The controller's side of the wire for the conformance kit: one MQTT client watching one unit.

It records everything the unit under test publishes (``{p}/node/{unit}/+``), answers its clock
requests as a controller does (docs/protocol.md §1 *clock sync*), and sends configs, commands,
manifests and chunks exactly as the items ask — including the wrong ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from devices.conformance.audio import silent_mp3
from devices.conformance.shape import parse
from devices.framing import chunk_audio
from devices.messages import now_ms
from devices.mqtt import AsyncMqttClient, Brokers
from devices.topics import NODE_LEAVES, AudioScope, Topics

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Seen:
    """One message the unit published."""

    leaf: str
    payload: bytes
    retained: bool
    at: float  # time.monotonic() on arrival
    obj: dict[str, Any] | None
    wall_ms: int = 0  # the kit's clock on arrival (the controller's clock, for the unit)


@dataclass
class Bcast:
    """A broadcast the kit offers: its manifest (a dict, sent as is) and framed chunks."""

    bc: str
    manifest: dict[str, Any]
    frames: list[bytes]
    duration_ms: int


class Harness:
    """Plays the controller for one unit; every wait has a deadline and returns None on timeout."""

    def __init__(self, broker: Brokers, unit: str, *, prefix: str = "lp", timeout_s: float = 30.0,
                 quiet_s: float = 3.0, group: str = "lpconf") -> None:
        self.unit, self.t, self.timeout_s, self.quiet_s = unit, Topics(prefix), timeout_s, quiet_s
        self.group = group
        self.run = secrets.token_hex(3)
        self.seen: list[Seen] = []
        self.sent_ms: dict[str, int] = {}  # command id -> the kit's clock when it was sent
        self.time_answered = 0
        self.client = AsyncMqttClient(f"lp-conformance-{self.run}", broker, on_message=self._on)
        self._bcasts = 0

    # ------------------------------------------------------------------ link

    async def start(self) -> bool:
        """Connect and subscribe to the unit's topics; False if the broker is not reachable."""
        self.client.start()
        try:
            await asyncio.wait_for(self.client.connected.wait(), self.timeout_s)
        except TimeoutError:
            return False
        fut = self.client.subscribe([f"{self.t.prefix}/node/{self.unit}/+"])
        if fut is None:
            return False
        codes = await asyncio.wait_for(fut, self.timeout_s)
        return all(c != 128 for c in codes)

    async def stop(self) -> None:
        await self.client.stop()

    async def retained(self, topic: str, within: float = 5.0) -> bytes | None:
        """What the broker keeps retained on ``topic``, read by a fresh subscription (a message to
        an established one never carries the retain flag, MQTT 3.1.1 §3.3.1.3); None if nothing."""
        got: list[bytes] = []
        probe = AsyncMqttClient(f"lp-conformance-{self.run}-r{secrets.token_hex(2)}", self.client.broker,
                                on_message=lambda _t, p, r: got.append(p) if r else None)
        probe.start()
        try:
            await asyncio.wait_for(probe.connected.wait(), self.timeout_s)
            fut = probe.subscribe([topic])
            if fut is not None:
                await asyncio.wait_for(fut, self.timeout_s)
            await self.wait(lambda: got, within=within)
        except TimeoutError:
            return None
        finally:
            await probe.stop()
        return got[0] if got else None

    def _on(self, topic: str, payload: bytes, retained: bool) -> None:
        parsed = self.t.parse_node_topic(topic)
        if parsed is None or parsed[0] != self.unit or parsed[1] not in NODE_LEAVES:
            return
        obj = parse(payload)
        self.seen.append(Seen(parsed[1], payload, retained, time.monotonic(), obj, now_ms()))
        if parsed[1] == "time" and obj is not None and isinstance(obj.get("t0"), int):
            t1 = now_ms()  # as the request comes off the socket; no queue before the reply
            reply = {"v": 1, "ts": t1, "node_id": self.unit, "t0": obj["t0"], "t1": t1, "t2": now_ms()}
            if self.client.is_connected:
                self.client.publish_nowait(self.t.clock(self.unit), json.dumps(reply).encode(), qos=0)
                self.time_answered += 1

    # ------------------------------------------------------------------ what the unit said

    def of(self, leaf: str, since: float = 0.0) -> list[Seen]:
        return [s for s in self.seen if s.leaf == leaf and s.at >= since]

    def objs(self, leaf: str, since: float = 0.0, **match: Any) -> list[dict[str, Any]]:
        """The JSON objects on ``leaf`` since ``since`` whose keys equal ``match``."""
        return [s.obj for s in self.of(leaf, since) if s.obj is not None
                and all(s.obj.get(k) == v for k, v in match.items())]

    def acks(self, bc: str) -> list[dict[str, Any]]:
        return self.objs("ack", bc=bc)

    def states(self, bc: str) -> list[str]:
        return [str(a.get("state")) for a in self.acks(bc)]

    def responses(self, cmd_id: str) -> list[dict[str, Any]]:
        return self.objs("resp", id=cmd_id)

    def offset_bounds(self) -> tuple[int, int] | None:
        """Bounds of the unit's offset (kit clock − unit clock) from the ``ts`` of what it sent:
        a message arrives after it was sent (offset ≤ arrival − ts) and a response after its
        command (offset ≥ sent − ts). None without both kinds."""
        ups = [s.wall_ms - s.obj["ts"] for s in self.seen if s.obj and isinstance(s.obj.get("ts"), int)]
        downs = [self.sent_ms[s.obj["id"]] - s.obj["ts"] for s in self.of("resp")
                 if s.obj and isinstance(s.obj.get("ts"), int) and s.obj.get("id") in self.sent_ms]
        return (max(downs), min(ups)) if ups and downs else None

    async def wait(self, pred: Callable[[], T], within: float | None = None) -> T | None:
        """``pred()`` once it is truthy, or None after ``within`` s (default: the kit's timeout)."""
        deadline = time.monotonic() + (self.timeout_s if within is None else within)
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.05)

    async def quiet(self, seconds: float | None = None) -> None:
        """Let ``seconds`` pass (default ``quiet_s``) so that what must NOT happen had its chance."""
        await asyncio.sleep(self.quiet_s if seconds is None else seconds)

    # ------------------------------------------------------------------ what the kit sends

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        await self.client.publish(topic, payload, qos=qos, retain=retain, timeout=self.timeout_s)

    async def config(self, groups: list[str], volume: int = 70,
                     attention: dict[str, Any] | None = None) -> None:
        cfg = {"v": 1, "ts": now_ms(), "node_id": self.unit, "name": "loaphuong conformance",
               "groups": groups, "volume": volume, "attention": attention}
        await self.publish(self.t.config(self.unit), json.dumps(cfg).encode(), retain=True)

    def new_id(self, tag: str = "c") -> str:
        return f"{tag}-{secrets.token_hex(8)}"

    async def command(self, name: str, args: dict[str, Any] | None = None, *, cmd_id: str | None = None,
                      expires_in_s: float | None = 30.0, topic: str | None = None,
                      retain: bool = False) -> str:
        """Send a well-formed command; returns its id."""
        cmd_id = cmd_id or self.new_id()
        body = {"v": 1, "ts": now_ms(), "id": cmd_id, "name": name, "args": args or {},
                "expires_at": None if expires_in_s is None else now_ms() + int(expires_in_s * 1000)}
        self.sent_ms.setdefault(cmd_id, now_ms())
        await self.publish(topic or self.t.cmd(self.unit), json.dumps(body).encode(), retain=retain)
        return cmd_id

    async def call(self, name: str, args: dict[str, Any] | None = None,
                   **kw: Any) -> tuple[str, dict[str, Any] | None]:
        """Send a command and wait for its first response: (id, response or None)."""
        cmd_id = await self.command(name, args, **kw)
        got = await self.wait(lambda: self.responses(cmd_id))
        return cmd_id, (got[0] if got else None)

    async def alive(self) -> dict[str, Any] | None:
        """A ping's response (the unit still answers), or None."""
        return (await self.call("ping"))[1]

    def make_bcast(self, *, duration_ms: int = 2000, chunk_size: int = 2048, hold: bool = True,
                   expires_in_s: float = 600.0, priority: str = "normal") -> Bcast:
        self._bcasts += 1
        audio, exact_ms = silent_mp3(duration_ms, salt=self._bcasts)
        info, frames = chunk_audio(audio, duration_ms=exact_ms, chunk_size=chunk_size)
        bc = f"conf-{self.run}-{self._bcasts}"
        manifest = {"v": 1, "ts": now_ms(), "bc": bc, "title": "conformance", "priority": priority,
                    "play_at": None, "expires_at": now_ms() + int(expires_in_s * 1000), "repeat": 1,
                    "hold": hold, "audio": info.model_dump()}
        return Bcast(bc, manifest, frames, exact_ms)

    def scope(self) -> AudioScope:
        return AudioScope(kind="node", id=self.unit)

    async def offer(self, b: Bcast, frames: dict[int, bytes] | None = None,
                    skip: frozenset[int] = frozenset()) -> None:
        """The retained manifest, then the chunks in order (``frames`` replaces some, ``skip`` withholds)."""
        await self.publish(self.t.manifest(self.scope(), b.bc), json.dumps(b.manifest).encode(), retain=True)
        await self.send_chunks(b, [i for i in range(len(b.frames)) if i not in skip], frames)

    async def send_chunks(self, b: Bcast, indexes: list[int], frames: dict[int, bytes] | None = None) -> None:
        for i in indexes:
            await self.publish(self.t.data(self.scope(), b.bc), (frames or {}).get(i, b.frames[i]))

    async def withdraw(self, b: Bcast) -> None:
        """The empty retained manifest: the controller is done with it (§3 manifest)."""
        await self.publish(self.t.manifest(self.scope(), b.bc), b"", retain=True)
