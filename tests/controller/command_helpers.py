"""Helpers for the command tests: a hand-driven unit, probes of retained messages and telemetry."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from devices import protocol as p
from devices.mqtt import AsyncMqttClient, BrokerAddress
from firmware_sim.node import SimNode
from tests.e2e.helpers import wait_for

Ctl = tuple[Any, httpx.AsyncClient]


async def start(nodes: list[SimNode]) -> None:
    """Start the units and wait until each has subscribed to the groups of its config."""
    await asyncio.gather(*(n.start() for n in nodes))
    for n in nodes:
        await wait_for(lambda n=n: n.config and set(n.config.groups) == n.groups_subscribed, 10,  # type: ignore[misc]
                       f"{n.node_id} groups")


async def telemetry_of(client: httpx.AsyncClient, node_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/api/nodes/{node_id}")).json()
    return dict(body["telemetry"])


async def retained(port: int, topic: str, expect: int = 0) -> list[bytes]:
    """Retained payloads a fresh subscriber gets on ``topic`` (waiting for ``expect`` of them)."""
    got: list[bytes] = []
    c = AsyncMqttClient("probe", BrokerAddress(port=port), on_message=lambda t, pl, r: r and got.append(pl))
    c.start()
    await c.connected.wait()
    fut = c.subscribe([topic])
    assert fut is not None
    await fut
    if expect:
        await wait_for(lambda: len(got) >= expect, 10, f"{expect} retained message(s) on {topic}")
    else:
        await asyncio.sleep(0.3)  # none should come: give one a moment to show up if it would
    await c.stop()
    return got


class FakeUnit:
    """A hand-driven unit: it announces itself, collects commands and answers only when told."""

    def __init__(self, node_id: str, port: int, groups: tuple[str, ...] = ("all", "z")) -> None:
        self.node_id = node_id
        self.t = p.Topics()
        self.inbox = [self.t.cmd(node_id), *(self.t.group_cmd(g) for g in groups)]
        self.commands: list[p.Command] = []
        self.client = AsyncMqttClient(node_id, BrokerAddress(port=port), on_message=self._on_message)

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic in self.inbox:
            self.commands.append(p.decode(p.Command, payload))

    async def start(self) -> None:
        self.client.start()
        await self.client.connected.wait()
        fut = self.client.subscribe(self.inbox)
        assert fut is not None
        await fut
        birth = p.NodeState(node_id=self.node_id, status=p.NodeStatus.ONLINE, session="fake0001")
        await self.client.publish(self.t.state(self.node_id), p.encode(birth), retain=True)

    async def send(self, body: bytes) -> None:
        await self.client.publish(self.t.resp(self.node_id), body, qos=1)

    async def reply(self, cmd: p.Command, data: dict[str, Any], status: str = "ok", **kw: Any) -> None:
        resp = p.CommandResponse(id=cmd.id, node_id=kw.get("node_id", self.node_id), status=status,  # type: ignore[arg-type]
                                 data=data, error=kw.get("error", ""))
        await self.send(p.encode(resp))
