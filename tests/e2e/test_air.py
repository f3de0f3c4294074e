"""Airing through the per-zone arbiter: order of classes, emergency pre-emption, start in step,
and units that are not ready at air time."""

from __future__ import annotations

import asyncio
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from devices.broker import BrokerProcess
from firmware_sim.faults import Faults
from firmware_sim.node import SimNode
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, sim, states, wait_broadcast, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

LONG = "Thông báo lịch tiêm chủng mở rộng cho trẻ em trong phường. " * 4  # ~14 s of speech
SHORT = "Kiểm tra loa."


def started(node: SimNode, bc: str) -> float:
    return node.player.start_times[bc][0]


@pytest.mark.both_databases
async def test_priority_goes_before_normal_and_one_item_sounds_at_a_time(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (_, client):
        await provision(client, {"z": ["q-1", "q-2"]})
        nodes = [sim(n, mosquitto.port, Faults(time_scale=0.25)) for n in ("q-1", "q-2")]
        await asyncio.gather(*(n.start() for n in nodes))
        try:
            await wait_online(client, ["q-1", "q-2"])
            long_b, short_b = await bulletin(client, LONG), await bulletin(client, SHORT)
            first = await air(client, long_b["id"], {"zones": ["z"]})
            await wait_for(lambda: all(first in n.player.start_times for n in nodes), 20, "first starts")
            normal = await air(client, short_b["id"], {"zones": ["z"]})
            urgent = await air(client, short_b["id"], {"zones": ["z"]}, priority="priority")
            for bid in (first, normal, urgent):
                bc = await wait_broadcast(client, bid, 90)
                assert set(states(bc).values()) == {"played"}
            for n in nodes:
                order = sorted([first, normal, urgent], key=lambda b, n=n: started(n, b))
                assert order == [first, urgent, normal]  # ưu tiên before thường, nothing overlapped
                assert started(n, urgent) >= started(n, first) + 0.25 * long_b["audio"]["duration_ms"] - 100
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))


@pytest.mark.both_databases
async def test_emergency_preempts_and_the_interrupted_item_is_reported(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (_, client):
        await provision(client, {"a": ["a-1", "a-2"], "b": ["b-1"]})
        nodes = {n: sim(n, mosquitto.port, Faults(time_scale=0.5, power_on=(n != "a-2")))
                 for n in ("a-1", "a-2", "b-1")}
        await asyncio.gather(*(n.start() for n in nodes.values()))
        try:
            await wait_online(client, list(nodes))
            long_b = await bulletin(client, LONG)
            storm = await bulletin(client, "Khẩn cấp: bão số 5 sắp đổ bộ, người dân không ra khỏi nhà.")
            normal = await air(client, long_b["id"], {"zones": ["a", "b"]})
            await wait_for(lambda: all(normal in nodes[n].player.start_times for n in ("a-1", "b-1")),
                           20, "normal broadcast playing")
            emergency = await air(client, storm["id"], {"zones": ["a"]}, priority="emergency")
            bc = await wait_broadcast(client, emergency, 60)
            assert states(bc) == {"a-1": "played", "a-2": "played"}  # a-2 was switched off: powered on
            assert nodes["a-2"].player.power is True
            bc = await wait_broadcast(client, normal, 60)
            # default policy: drop and report, in every zone the interrupted item held
            reasons = {d["node_id"]: (d["state"], d["reason"]) for d in bc["deliveries"]}
            assert reasons["a-1"] == ("failed", "preempted") and reasons["b-1"] == ("failed", "preempted")
            assert reasons["a-2"] == ("failed", "power_off")  # it was off when the normal item started
            assert nodes["b-1"].played == [] and emergency not in nodes["b-1"].player.start_times
        finally:
            await asyncio.gather(*(n.stop() for n in nodes.values()))


async def test_restart_policy_plays_the_interrupted_item_again(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mosquitto.port, preempt_policy="restart")
    async with running_controller(settings) as (_, client):
        await provision(client, {"a": ["r-1"]})
        node = sim("r-1", mosquitto.port, Faults(time_scale=0.5))
        await node.start()
        try:
            await wait_online(client, ["r-1"])
            long_b, storm = await bulletin(client, LONG), await bulletin(client, "Khẩn cấp: cháy chợ.")
            normal = await air(client, long_b["id"], {"zones": ["a"]})
            await wait_for(lambda: normal in node.player.start_times, 20, "normal playing")
            emergency = await air(client, storm["id"], {"all": True}, priority="emergency")
            for bid in (emergency, normal):
                assert states(await wait_broadcast(client, bid, 90)) == {"r-1": "played"}
            assert node.player.started == [normal, emergency, normal]
            hist = [h["state"] for h in (await client.get(f"/api/broadcasts/{normal}")).json()[
                "deliveries"][0]["history"]]
            assert hist[-4:] == ["playing", "verified", "playing", "played"]
        finally:
            await node.stop()


@pytest.mark.both_databases
async def test_units_with_skewed_clocks_start_in_step(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    """Clocks off by up to ±20 s, drifting, behind a jittery link: starts within a few tens of ms."""
    offsets = [-20_000, -7_000, 0, 4_000, 19_000]
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (_, client):
        ids = [f"s-{i}" for i in range(len(offsets))]
        await provision(client, {"z": ids})
        nodes = [sim(n, mosquitto.port, Faults(clock_offset_ms=o, clock_drift_ppm=50, net_delay_ms=20,
                                               jitter_ms=30, time_scale=0.1))
                 for n, o in zip(ids, offsets, strict=True)]
        await asyncio.gather(*(n.start() for n in nodes))
        try:
            await wait_online(client, ids)
            await wait_for(lambda: all(len(n.sync.samples) >= 3 for n in nodes), 20, "clock samples")
            for n, o in zip(nodes, offsets, strict=True):
                assert n.sync.offset_ms is not None and abs(n.sync.offset_ms + o) < 100
            b = await bulletin(client, SHORT)
            bid = await air(client, b["id"], {"zones": ["z"]})
            assert set(states(await wait_broadcast(client, bid, 60)).values()) == {"played"}
            starts = [started(n, bid) for n in nodes]
            assert max(starts) - min(starts) < 150, starts  # unsynchronised they would be 39 s apart
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))


async def test_unit_not_ready_at_air_time_says_why_and_catches_up(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mosquitto.port, ready_wait_s=0.5)
    async with running_controller(settings) as (_, client):
        await provision(client, {"z": ["fast-1", "slow-1"]})
        fast = sim("fast-1", mosquitto.port, Faults(time_scale=0.2))
        # loses every chunk the first time: it asks only after 2 × 4 s without any (§3), late for air time
        slow = sim("slow-1", mosquitto.port, Faults(time_scale=0.2, drop_chunks=set(range(1000))),
                   repair_idle_s=4.0)
        await asyncio.gather(fast.start(), slow.start())
        try:
            await wait_online(client, ["fast-1", "slow-1"])
            b = await bulletin(client, LONG)
            bid = await air(client, b["id"], {"zones": ["z"]})
            bc: dict[str, Any] = await wait_broadcast(client, bid, 60)
            assert states(bc) == {"fast-1": "played", "slow-1": "played"}
            slow_hist = next(d for d in bc["deliveries"] if d["node_id"] == "slow-1")["history"]
            assert any(h["reason"].startswith("at air time: not_ready") for h in slow_hist), slow_hist
            assert started(slow, bid) > started(fast, bid)  # its own turn, after it had the audio
        finally:
            await asyncio.gather(fast.stop(), slow.stop())


async def test_future_air_time_is_pre_delivered_and_starts_on_time(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (_, client):
        await provision(client, {"z": ["t-1", "t-2"]})
        nodes = [sim(n, mosquitto.port, Faults(time_scale=0.2)) for n in ("t-1", "t-2")]
        await asyncio.gather(*(n.start() for n in nodes))
        try:
            await wait_online(client, ["t-1", "t-2"])
            b = await bulletin(client, SHORT)
            at = datetime.now(tz=UTC) + timedelta(seconds=12)
            bid = await air(client, b["id"], {"zones": ["z"]}, air_at=at.isoformat())
            # the audio is out well before the slot: both units hold it, verified, and wait
            bc = await wait_broadcast(client, bid, 10,
                                      done=lambda bc: set(states(bc).values()) == {"verified"})
            assert bc["play_at"] is not None and bc["air_at"] < bc["play_at"]
            assert all(bid not in n.player.start_times for n in nodes)
            bc = await wait_broadcast(client, bid, 30)
            assert set(states(bc).values()) == {"played"}
            for n in nodes:  # started at the slot, not when the audio arrived
                assert abs(started(n, bid) - at.timestamp() * 1000) < 300
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))
