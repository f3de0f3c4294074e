"""Simulated units that flap, against a real Mosquitto: a power loss keeps the verified files (the
retained manifest is answered ``verified``, nothing is downloaded again, the held broadcast plays
once on its ``play``), a power loss while playing ends it ``power_off`` for good, a network loss
keeps the session and what plays; every start and end goes to the appended play log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from devices.mqtt import BrokerAddress
from devices.protocol import AudioScope, NodeState, decode, now_ms
from firmware_sim.flap import FlapPlan
from firmware_sim.fleet import main as fleet_main
from firmware_sim.fleet import run_fleet
from firmware_sim.node import SimNode
from firmware_sim.playlog import PlayLog, double_plays, read_play_log, starts
from tests.firmware_sim import test_node
from tests.firmware_sim.test_node import Ctl, make_bcast, until

prefix, ctl, nodes = test_node.prefix, test_node.ctl, test_node.nodes  # its fixtures, shared

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(90)]


def _statuses(ctl: Ctl, node_id: str) -> list[str]:
    return [decode(NodeState, p).status.value for p, _ in ctl.of(node_id, "state")]


async def test_a_power_flap_keeps_the_verified_file_and_it_plays_once(
        ctl: Ctl, nodes: Callable[..., SimNode], tmp_path: Path) -> None:
    log = tmp_path / "plays.jsonl"
    node = nodes("loa-1", play_log=PlayLog(log))
    await node.start()
    scope = AudioScope(kind="node", id="loa-1")
    m, frames, audio = make_bcast("b-held", chunk_size=4096)
    await ctl.send(scope, m.model_copy(update={"hold": True}), frames)
    await until(lambda: "verified" in ctl.states("loa-1", "b-held"), what="verified")
    session, chunks = node.session, node.stats.chunks_ok

    await node.kill()  # mains loss between verified and the start
    await until(lambda: _statuses(ctl, "loa-1")[-1:] == ["offline"], what="last-will")
    await node.start()
    await until(lambda: ctl.states("loa-1", "b-held").count("verified") == 2,
                what="the retained manifest answered verified from flash")
    assert node.session != session and ctl.states("loa-1", "b-held") == ["receiving", "verified", "verified"]
    assert node.stats.chunks_ok == chunks and ctl.repairs("loa-1") == []  # no second download
    assert node.player.state_of("b-held") is not None

    await ctl.call("loa-1", "play", {"bc": "b-held", "at": now_ms()})
    await until(lambda: "played" in ctl.states("loa-1", "b-held"), what="played")
    again = await ctl.call("loa-1", "play", {"bc": "b-held", "at": now_ms()})
    assert again.data == {"bc": "b-held", "already": "played"}
    events = read_play_log(log)
    assert starts(events) == {("loa-1", "b-held"): 1} and double_plays(events) == {}
    assert [(e.event, e.reason, e.boot) for e in events] == [("start", "", 2), ("end", "played", 2)]


async def test_power_lost_while_playing_ends_it_power_off_and_it_never_plays_again(
        ctl: Ctl, nodes: Callable[..., SimNode], tmp_path: Path) -> None:
    log = tmp_path / "plays.jsonl"
    node = nodes("loa-2", play_log=PlayLog(log), time_scale=1.0)
    await node.start()
    scope = AudioScope(kind="node", id="loa-2")
    m, frames, _ = make_bcast("b-long", duration_ms=20_000)
    await ctl.send(scope, m, frames)  # hold false: plays once verified
    await until(lambda: "playing" in ctl.states("loa-2", "b-long"), what="playing")
    await node.kill()
    await node.start()
    await until(lambda: ("failed", "power_off") in ctl.acks("loa-2", "b-long"),
                what="the retained manifest answered with the final ack")
    resp = await ctl.call("loa-2", "play", {"bc": "b-long", "at": now_ms()})
    assert resp.data == {"bc": "b-long", "already": "failed", "reason": "power_off"}
    events = read_play_log(log)
    assert [(e.event, e.reason, e.boot) for e in events] == [("start", "", 1), ("end", "power_loss", 1)]
    assert node.player.playing == "" and node.played == []


async def test_a_network_flap_keeps_the_session_and_what_plays(
        ctl: Ctl, nodes: Callable[..., SimNode], tmp_path: Path) -> None:
    log = tmp_path / "plays.jsonl"
    node = nodes("loa-3", play_log=PlayLog(log), time_scale=1.0)
    await node.start()
    scope = AudioScope(kind="node", id="loa-3")
    m, frames, _ = make_bcast("b-net", duration_ms=6_000)
    await ctl.send(scope, m, frames)
    await until(lambda: "playing" in ctl.states("loa-3", "b-net"), what="playing")
    session, connects = node.session, node.stats.connects
    await node.drop_network(1.0)
    await until(lambda: node.stats.connects > connects and node.connected, what="reconnected")
    # its retained "online" comes after the reconnect: waited for, not looked at the instant of it
    await until(lambda: _statuses(ctl, "loa-3")[-1] == "online", what="online again")
    assert "offline" in _statuses(ctl, "loa-3")
    assert node.session == session and node.player.playing == "b-net"
    await until(lambda: "played" in ctl.states("loa-3", "b-net"), within=20, what="played")
    events = read_play_log(log)
    assert [(e.event, e.reason) for e in events] == [("start", ""), ("end", "played")]
    assert node.played == ["b-net"]


async def test_run_fleet_flaps_its_share_a_bounded_number_of_times(sim_broker: BrokerAddress,
                                                                   prefix: str, tmp_path: Path) -> None:
    summary = await run_fleet(
        4, sim_broker, prefix=prefix, id_prefix="fl", duration_s=4.0, handle_signals=False,
        summary_s=1.0, play_log=tmp_path / "plays.jsonl",
        flap=FlapPlan(0.5, every_s=1.0, mode="power", down_s=0.3, seed=2, times=1))
    assert summary["nodes"] == 4 and summary["flaps"] == 2 and summary["connected"] == 0
    assert read_play_log(tmp_path / "plays.jsonl") == []  # nothing was aired: nothing logged


async def test_sim_command_refuses_an_unbounded_flap(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--flap", "1.5"], ["--flap", "0.3", "--flap-every", "0.1"],
                 ["--flap", "0.3", "--flap-every", "5", "--flap-down", "10"]):
        with pytest.raises(SystemExit) as exc:
            fleet_main(argv)
        assert exc.value.code == 2
    assert "flap" in capsys.readouterr().err
