"""controller/fleet/gateway_presence.py: a dead gateway's children become "unknown"
(docs/protocol.md §7.5)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.fleet.gateway_presence import GatewayPresence
from controller.fleet.presence import Presence
from devices import protocol as p
from devices.broker import BrokerProcess
from devices.link import ControllerLink
from devices.mqtt import BrokerAddress
from devices.serial.contract import GatewayState
from tests.devices.test_serial_gateway import CHILDREN, make_rig
from tests.e2e.helpers import wait_for


class FakeLink:
    """Just the registry part of ControllerLink: handlers per leaf, called in order."""

    connected = True

    def __init__(self) -> None:
        self.handlers: dict[str, list[Callable[[str, Any], None]]] = {}

    def on(self, leaf: str, handler: Callable[[str, Any], None]) -> None:
        self.handlers.setdefault(leaf, []).append(handler)

    def on_connect(self, callback: object) -> None:
        pass

    def deliver(self, leaf: str, node_id: str, msg: Any) -> None:
        for handler in self.handlers.get(leaf, []):
            handler(node_id, msg)


class FakeWriter:
    def __init__(self) -> None:
        self.ops: list[object] = []

    def submit(self, op: object) -> None:
        self.ops.append(op)

    def submit_row(self, apply: object, row: object) -> None:  # a bulk row (presence changes)
        self.ops.append((apply, row))


def make_presence(link: Any, nodes: list[str]) -> tuple[Presence, GatewayPresence, list[tuple[str, bool]]]:
    presence = Presence(link, FakeWriter(), heartbeat_timeout_s=45)  # type: ignore[arg-type]
    for n in nodes:
        presence.provision(n)
    changes: list[tuple[str, bool]] = []
    presence.add_listener(lambda n, online: changes.append((n, online)))
    # gw1 is provisioned with its children (Settings.gateways): it vouches for those only
    provisioned = {"gw1": [n for n in nodes if n.startswith("gw1-")]}
    return presence, GatewayPresence(link, presence, provisioned), changes


def gw_state(status: p.NodeStatus, children: list[str]) -> GatewayState:
    return GatewayState(node_id="gw1", status=status, session="g1", children=children)


def child_state(node: str, status: p.NodeStatus = p.NodeStatus.ONLINE) -> p.NodeState:
    return p.NodeState(node_id=node, status=status, session="c1")


def test_gateway_will_marks_children_unknown_and_stale_states_do_not_revive_them() -> None:
    link = FakeLink()
    presence, gp, changes = make_presence(link, ["gw1", "gw1-a01", "gw1-a02", "other"])
    link.deliver("state", "gw1", gw_state(p.NodeStatus.ONLINE, ["gw1-a01", "gw1-a02"]))
    link.deliver("state", "gw1-a01", child_state("gw1-a01"))
    link.deliver("state", "gw1-a02", child_state("gw1-a02"))
    link.deliver("state", "other", child_state("other"))
    assert [presence.status(n) for n in ("gw1-a01", "gw1-a02")] == ["online", "online"]
    # The gateway's will: both children unknown at once (listeners told they are not online);
    # an unrelated node is untouched.
    link.deliver("state", "gw1", gw_state(p.NodeStatus.OFFLINE, ["gw1-a01", "gw1-a02"]))
    assert [presence.status(n) for n in ("gw1-a01", "gw1-a02", "other")] == ["unknown", "unknown", "online"]
    assert ("gw1-a01", False) in changes and ("gw1-a02", False) in changes
    assert gp.down == {"gw1"} and gp.gateway_of("gw1-a02") == "gw1"
    # A replayed retained "online" of a child, or a stray heartbeat, does not revive it.
    link.deliver("state", "gw1-a01", child_state("gw1-a01"))
    link.deliver("heartbeat", "gw1-a02", p.Heartbeat(node_id="gw1-a02", session="c1", seq=1))
    assert [presence.status(n) for n in ("gw1-a01", "gw1-a02")] == ["unknown", "unknown"]
    # The gateway's next birth, then its fresh child states: online again.
    link.deliver("state", "gw1", gw_state(p.NodeStatus.ONLINE, ["gw1-a01", "gw1-a02"]))
    link.deliver("state", "gw1-a01", child_state("gw1-a01"))
    assert presence.status("gw1-a01") == "online" and gp.down == set()


def test_the_wire_state_carries_the_children() -> None:
    # devices.protocol.NodeState itself keeps the children list: a will decoded off the wire
    # marks the gateway's children unknown.
    link = FakeLink()
    presence, gp, _ = make_presence(link, ["gw1", "gw1-a01"])
    link.deliver("state", "gw1-a01", child_state("gw1-a01"))
    will = p.decode(p.NodeState, p.encode(gw_state(p.NodeStatus.OFFLINE, ["gw1-a01"])))
    assert will.children == ["gw1-a01"]
    link.deliver("state", "gw1", will)
    assert presence.status("gw1-a01") == "unknown" and gp.children == {"gw1": ["gw1-a01"]}


@pytest.mark.broker
@pytest.mark.pty
@pytest.mark.timeout(60)
async def test_real_gateway_killed_children_unknown(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    # A real gateway (pty + simulated boards) dies: afterwards all four children are "unknown" in
    # the controller's presence (the silent one too), though three stale retained states say online.
    link = ControllerLink(BrokerAddress(port=mosquitto.port), client_id="ctl-presence")
    presence, gp, _ = make_presence(link, ["gw1", *CHILDREN.values()])
    answering = ["gw1-a01", "gw1-a02", "gw1-a03"]
    link.start()
    try:
        async with make_rig(mosquitto.port, tmp_path) as rig:
            await wait_for(lambda: all(presence.status(n) == "online" for n in answering), 10, "online")
            await rig.gw.kill()
            await wait_for(lambda: all(presence.status(n) == "unknown" for n in answering), 10, "unknown")
            assert presence.status("gw1-a04") == "unknown"  # it was offline: now nobody knows
            assert gp.down == {"gw1"} and gp.children["gw1"] == list(CHILDREN.values())
            await asyncio.sleep(0.3)
            assert all(presence.status(n) == "unknown" for n in answering)
    finally:
        await link.stop()
