"""A 3-node NATS cluster (MQTT + JetStream, streams and consumers replicated on all three) with
the controller and ten simulated units given the list of the three nodes (each starts on its own
place of the ring: devices/failover.py). One node is SIGKILLed during a broadcast: its units move
to another node, and the broadcast is still played on every unit, once; the next bulletin reaches
every unit too. The third case kills the controller's own node while the units play: its link
moves on as the units' do. Issue 16 part 3."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devices.broker_cluster import NatsCluster
from devices.mqtt import BrokerAddress
from firmware_sim.faults import Faults
from firmware_sim.node import SimNode
from firmware_sim.playlog import PlayLog, read_play_log, starts
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, states, wait_broadcast, wait_for, wait_online

logger = logging.getLogger(__name__)
pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(300)]

UNITS = [f"cl-{i:02d}" for i in range(1, 11)]
LONG = "Thông báo lịch tiêm chủng mở rộng cho trẻ em trong phường. " * 2  # ~7 s of speech
SHORT = "Kiểm tra loa sau sự cố máy chủ."


def on_port(node: SimNode) -> int | None:
    link = node._rt.link
    return link.broker.port if link is not None and link.is_connected else None


def victim_index(cluster: NatsCluster, controller_port: int, nodes: list[SimNode], when: str) -> int:
    """The controller's own node (``when == "controller"``), else the node with the most units
    that is not the controller's."""
    if when == "controller":
        return cluster.mqtt_ports.index(controller_port)
    count = Counter(on_port(n) for n in nodes)
    candidates = [i for i, p in enumerate(cluster.mqtt_ports) if p != controller_port and count[p] > 0]
    assert candidates, f"no node other than the controller's has units: {count}"
    return max(candidates, key=lambda i: count[cluster.mqtt_ports[i]])


def started(log: PlayLog, bc: str) -> dict[str, int]:
    """unit → how many times it started ``bc``, from the units' play log (every unit listed)."""
    counts = starts(read_play_log(log.path))
    return {u: counts[(u, bc)] for u in UNITS}


def not_played(bc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """unit → (state, reason) of each delivery of ``bc`` that did not end ``played``."""
    return {d["node_id"]: (d["state"], d["reason"]) for d in bc["deliveries"] if d["state"] != "played"}


def played_once(nodes: list[SimNode], bc: str) -> dict[str, int]:
    return {n.node_id: n.played.count(bc) for n in nodes if n.played.count(bc) != 1}


def diagnosis(nodes: list[SimNode], bc: dict[str, Any], app: Any, dead_port: int) -> str:
    """What each unit and the controller say, for the message of a failed assertion: the delivery
    state and last reason, the unit's broker node, its groups granted, its download progress and
    counters, and the controller's repair counters."""
    rows = {d["node_id"]: d for d in bc["deliveries"]}
    repairs = app.state.services.delivery.repairs.stats
    lines = [f"broadcast {bc['id']} (dead MQTT port {dead_port}); controller repairs: {repairs}"]
    for n in nodes:
        d, s, b = rows.get(n.node_id, {}), n.stats, bc["id"]
        lines.append(f"  {n.node_id}: {d.get('state')} ({d.get('reason')!r}) on {on_port(n)}"
                     f" groups={sorted(n.groups_subscribed)} progress={n.downloads.progress(b)}"
                     f" played={n.played.count(b)} connects={s.connects} manifests={s.manifests}"
                     f" chunks_ok={s.chunks_ok} ignored={s.chunks_ignored} repairs={s.repairs_sent}")
    return "\n".join(lines)


async def ended(client: Any, bid: str, timeout: float, nodes: list[SimNode], app: Any,
                dead_port: int) -> dict[str, Any]:
    """:func:`wait_broadcast`, with the :func:`diagnosis` in the message if it does not end."""
    try:
        return await wait_broadcast(client, bid, timeout)
    except AssertionError as exc:
        now = (await client.get(f"/api/broadcasts/{bid}")).json()
        raise AssertionError(f"{exc}\n{diagnosis(nodes, now, app, dead_port)}") from None


@pytest.mark.parametrize("when", ["downloading", "playing", "controller"])
async def test_one_nats_node_killed_during_a_broadcast(nats_cluster: NatsCluster, tmp_path: Path,
                                                        when: str) -> None:
    ports = nats_cluster.mqtt_ports
    settings = make_settings(tmp_path, ports[0], resend_after_s=5.0)
    settings.mqtt.brokers = [f"127.0.0.1:{p}" for p in ports]
    addrs = [BrokerAddress(port=p) for p in ports]
    async with running_controller(settings) as (app, client):
        link = app.state.services.link.client
        await wait_for(lambda: link.is_connected, 30, "controller on the cluster")
        await provision(client, {"z": UNITS})
        log = PlayLog(tmp_path / "plays.jsonl")
        nodes = [SimNode(u, addrs, heartbeat_s=5.0, faults=Faults(time_scale=0.5), log_link_failures=False,
                         play_log=log) for u in UNITS]
        await asyncio.gather(*(n.start(wait_s=60) for n in nodes))
        try:
            await wait_online(client, UNITS, timeout=60)
            spread = Counter(on_port(n) for n in nodes)
            assert len(spread) >= 2, f"the units did not spread over the nodes: {spread}"
            victim = victim_index(nats_cluster, link.broker.port, nodes, when)
            dead_port = ports[victim]
            moving = [n for n in nodes if on_port(n) == dead_port]
            long_b = await bulletin(client, LONG)
            bid = await air(client, long_b["id"], {"zones": ["z"]})
            if when in ("playing", "controller"):
                await wait_for(lambda: any(bid in n.player.start_times for n in nodes), 60, "a unit plays")
            t0 = time.monotonic()
            nats_cluster.kill(victim)
            await wait_for(lambda: all(on_port(n) not in (None, dead_port) for n in moving), 60,
                           f"{len(moving)} units of the dead node on another node")
            moved_s = time.monotonic() - t0
            if when == "controller":  # the controller's link went on to another node too
                await wait_for(lambda: link.is_connected and link.broker.port != dead_port, 60,
                               "controller on another node")
                mqtt = (await client.get("/api/health")).json()["mqtt"]
                assert mqtt["brokers"] == [f"mqtt://127.0.0.1:{p}" for p in ports]
                assert mqtt["broker_moves"] >= 1
                assert mqtt["broker"] != f"mqtt://127.0.0.1:{dead_port}"
            bc = await ended(client, bid, 150, nodes, app, dead_port)
            why = diagnosis(nodes, bc, app, dead_port)
            assert not_played(bc) == {} and len(states(bc)) == len(UNITS), why
            assert played_once(nodes, bid) == {}
            assert {u: c for u, c in started(log, bid).items() if c != 1} == {}  # started once, never again
            assert all(n.stats.connects >= 2 for n in moving)
            # the next bulletin reaches every unit, on the two nodes left
            nxt = await air(client, (await bulletin(client, SHORT))["id"], {"zones": ["z"]})
            bc2 = await ended(client, nxt, 120, nodes, app, dead_port)
            why = diagnosis(nodes, bc2, app, dead_port)
            assert not_played(bc2) == {} and len(states(bc2)) == len(UNITS), why
            assert played_once(nodes, nxt) == {}
            assert {u: c for u, c in started(log, nxt).items() if c != 1} == {}
            logger.warning("cluster failover (%s): %d units moved in %.1f s", when, len(moving), moved_s)
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))
