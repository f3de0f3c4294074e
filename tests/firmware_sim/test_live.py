"""A node's live receiver over the wire: jitter buffer (reorder, loss, late frames), its own
stop when frames stop, refusal while switched off, and bad frames ignored."""

from __future__ import annotations

import pytest

from devices.protocol import AudioScope, Topics, pack_live_frame
from tests.firmware_sim import test_node
from tests.firmware_sim.test_node import Ctl, SimNode, until

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(60)]

FRAME = 1280  # 40 ms at 16 kHz
prefix, ctl, nodes = test_node.prefix, test_node.ctl, test_node.nodes  # the same fixtures


def pcm(seq: int) -> bytes:
    return bytes([seq % 250 + 1]) * FRAME


async def start(ctl: Ctl, node: SimNode, **args: object) -> None:
    await node.start()
    r = await ctl.call(node.node_id, "live_start", {"session": "live-1", **args})
    assert r.status == "ok" and r.data == {"live": "live-1"}


async def test_reordered_lost_and_late_frames(ctl: Ctl, nodes: object) -> None:
    node = nodes("lv-1")  # type: ignore[operator]
    await start(ctl, node, jitter_ms=120, idle_timeout_ms=800)
    topic = Topics(ctl.t.prefix).live(AudioScope(kind="node", id="lv-1"), "live-1")
    for seq in (0, 2, 1, 4, 5, 6):  # 1 and 2 swapped, 3 never sent
        await ctl.client.publish(topic, pack_live_frame(seq, 0, pcm(seq)), qos=0)
    await ctl.client.publish(topic, b"LPL garbage", qos=0)
    await ctl.client.publish(Topics(ctl.t.prefix).live(AudioScope(kind="node", id="lv-1"), "other"),
                             pack_live_frame(7, 0, pcm(7)), qos=0)
    await until(lambda: node.live.stats.played >= 7, 5, "playout")
    await ctl.client.publish(topic, pack_live_frame(3, 0, pcm(3)), qos=0)  # too late
    await until(lambda: "live-1" in node.live.ended, 5, "idle stop")
    played = [seq for _, seq, _ in node.live.output if seq >= 0]
    assert played == [0, 1, 2, 3, 4, 5, 6]  # 3 played as silence
    assert [p for _, seq, p in node.live.output if seq == 3] == [bytes(FRAME)]
    s = node.live.stats
    assert (s.lost, s.late, s.bad, s.stray) == (1, 1, 1, 1)
    assert node.live.ended["live-1"] == "no_audio" and node.live.active == ""  # stopped on its own


async def test_last_frame_drains_then_ends_and_power_off_refuses(ctl: Ctl, nodes: object) -> None:
    node = nodes("lv-2")  # type: ignore[operator]
    await start(ctl, node, jitter_ms=40)
    topic = Topics(ctl.t.prefix).live(AudioScope(kind="node", id="lv-2"), "live-1")
    for seq in range(3):
        await ctl.client.publish(topic, pack_live_frame(seq, 0, pcm(seq), last=seq == 2), qos=0)
    await until(lambda: node.live.ended.get("live-1") == "ended", 5, "drained")
    assert [seq for _, seq, _ in node.live.output if seq >= 0] == [0, 1, 2]
    assert (await ctl.call("lv-2", "power", {"on": False})).status == "ok"
    r = await ctl.call("lv-2", "live_start", {"session": "live-2"})
    assert (r.status, r.error) == ("error", "power_off")
    r = await ctl.call("lv-2", "live_start", {"session": "live-3", "priority": "emergency"})
    assert r.status == "ok" and node.player.power  # an emergency switches the amplifier on
    r = await ctl.call("lv-2", "live_start", {"session": "Bad Id!"})
    assert r.status == "error" and r.error.startswith("bad arguments: live_start: ")
    assert (await ctl.call("lv-2", "live_stop", {"session": "live-3"})).data == {"stopped": "live-3"}
    assert node.live.ended["live-3"] == "stopped"


async def test_a_unit_stopped_by_staff_stays_out_but_a_timed_out_one_rejoins(ctl: Ctl, nodes: object) -> None:
    node = nodes("lv-3")  # type: ignore[operator]
    await start(ctl, node, idle_timeout_ms=300)
    await until(lambda: node.live.ended.get("live-1") == "no_audio", 5, "idle stop")
    r = await ctl.call("lv-3", "live_start", {"session": "live-1"})  # the controller's repeat
    assert r.status == "ok" and node.live.active == "live-1"
    assert (await ctl.call("lv-3", "stop")).data == {"stopped": "live-1"}
    r = await ctl.call("lv-3", "live_start", {"session": "live-1"})
    assert (r.status, r.error) == ("error", "ended: stopped") and node.live.active == ""
