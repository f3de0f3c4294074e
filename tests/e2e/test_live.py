"""Live broadcast from a phone: WebSocket → controller → MQTT → units' jitter buffers, and every
way a session ends (stop, dropped phone, silent microphone, emergency) leaves no unit live."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from devices.broker import BrokerProcess
from firmware_sim.node import SimNode
from tests.conftest import ADMIN, make_settings
from tests.e2e.helpers import air, bulletin, provision, sim, states, wait_broadcast, wait_for, wait_online
from tests.e2e.serve import next_msg, phone, serving, talk

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


def loud_frames(node: SimNode, session: str) -> int:
    from controller.live.session import pcm_rms

    return sum(1 for _, _, pcm in node.live.output if pcm_rms(pcm) > 1000) if session else 0


@pytest.mark.both_databases
async def test_live_reaches_the_zone_and_stop_ends_it_everywhere(mosquitto: BrokerProcess,
                                                                  tmp_path: Path) -> None:
    import httpx

    async with serving(make_settings(tmp_path, mosquitto.port)) as (app, addr):
        async with httpx.AsyncClient(base_url=f"http://{addr}", auth=ADMIN) as client:
            await provision(client, {"z": ["l-1", "l-2"], "other": ["l-3"]})
            nodes = {n: sim(n, mosquitto.port) for n in ("l-1", "l-2", "l-3")}
            await asyncio.gather(*(n.start() for n in nodes.values()))
            try:
                await wait_online(client, list(nodes))
                ws = await phone(addr, ADMIN, {"zones": ["z"]})
                live = await next_msg(ws, "state", state="live")
                sid = live["session"]
                def heard() -> bool:
                    return all(loud_frames(nodes[n], sid) >= 20 for n in ("l-1", "l-2"))

                await talk(ws, 1000)
                deadline = time.monotonic() + 15
                while not heard() and time.monotonic() < deadline:  # a unit joins on live_start: on a
                    await talk(ws, 200)  # busy machine that may be after the first second, so go on
                units = await next_msg(ws, "units")
                assert set(units["live"]) <= {"l-1", "l-2"}
                await wait_for(heard, 15, "units play the voice")
                assert nodes["l-3"].live.output == [] and nodes["l-3"].live.stats.frames_in == 0
                for n in ("l-1", "l-2"):
                    assert nodes[n].live.stats.lost == 0 and nodes[n].live.active == sid
                await ws.send('{"type": "stop"}')
                ended = await next_msg(ws, "state", state="ended")
                assert ended["reason"] == "stopped" and ended["frames"] >= 24
                await wait_for(lambda: all(nodes[n].live.ended.get(sid) in ("stopped", "ended")
                                           for n in ("l-1", "l-2")), 15, "units stop")
                assert not any(n.live.active for n in nodes.values())
                assert app.state.services.air.arbiter.running == {}  # the zone is free again
                await ws.close()
            finally:
                await asyncio.gather(*(n.stop() for n in nodes.values()))


async def test_dropped_phone_silent_mic_and_quiet_phone_end_the_session(mosquitto: BrokerProcess,
                                                                          tmp_path: Path) -> None:
    import httpx

    async with serving(make_settings(tmp_path, mosquitto.port)) as (app, addr):
        async with httpx.AsyncClient(base_url=f"http://{addr}", auth=ADMIN) as client:
            await provision(client, {"z": ["d-1"]})
            node = sim("d-1", mosquitto.port)
            await node.start()
            try:
                await wait_online(client, ["d-1"])
                # 1. the phone's connection drops mid-sentence
                ws = await phone(addr, ADMIN, {"zones": ["z"]})
                sid = (await next_msg(ws, "state", state="live"))["session"]
                await talk(ws, 300)
                await wait_for(lambda: node.live.active == sid, 5, "unit live")  # joins within 2 s
                await talk(ws, 200)
                ws.transport.abort()  # no close handshake: like a phone losing its network
                await wait_for(lambda: node.live.ended.get(sid) is not None, 5, "unit stops")
                assert node.live.ended[sid] in ("disconnected", "ended") and not node.live.active
                # 2. the microphone sends only silence
                app.state.services.live_hub.silence_s = 1.0
                ws = await phone(addr, ADMIN, {"zones": ["z"]})
                sid = (await next_msg(ws, "state", state="live"))["session"]
                await talk(ws, 2000, pcm=bytes(64000))
                ended = await next_msg(ws, "state", state="ended")
                assert ended["reason"] == "silent"
                await wait_for(lambda: sid in node.live.ended, 5, "unit stops")
                # 3. the phone stays connected but sends nothing
                app.state.services.live_hub.silence_s = 60.0
                ws = await phone(addr, ADMIN, {"zones": ["z"]})
                sid = (await next_msg(ws, "state", state="live"))["session"]
                ended = await next_msg(ws, "state", state="ended", timeout=10)
                assert ended["reason"] == "no_audio"
                await wait_for(lambda: sid in node.live.ended and not node.live.active, 5, "unit stops")
                assert not node.live.active and app.state.services.air.arbiter.running == {}
            finally:
                await node.stop()


async def test_emergency_live_preempts_and_normal_live_is_refused_meanwhile(mosquitto: BrokerProcess,
                                                                            tmp_path: Path) -> None:
    import httpx

    async with serving(make_settings(tmp_path, mosquitto.port)) as (_, addr):
        async with httpx.AsyncClient(base_url=f"http://{addr}", auth=ADMIN, timeout=60) as client:
            await provision(client, {"a": ["e-1"], "b": ["e-2"]})
            nodes = {n: sim(n, mosquitto.port) for n in ("e-1", "e-2")}
            await asyncio.gather(*(n.start() for n in nodes.values()))
            try:
                await wait_online(client, list(nodes))
                b = await bulletin(client, "Thông báo lịch tiêm chủng mở rộng cho trẻ em. " * 3)
                bc = await air(client, b["id"], {"zones": ["a", "b"]})
                await wait_for(lambda: all(bc in n.player.start_times for n in nodes.values()), 20,
                               "bulletin playing")
                normal = await phone(addr, ADMIN, {"zones": ["a"]})
                waiting = await next_msg(normal, "state")
                assert waiting["state"] == "waiting"  # the zone is busy: a normal session waits
                urgent = await phone(addr, ADMIN, {"zones": ["a"]}, priority="emergency")
                sid = (await next_msg(urgent, "state", state="live"))["session"]
                await talk(urgent, 400)
                result = await wait_broadcast(client, bc, 30)
                assert {d["node_id"]: d["reason"] for d in result["deliveries"]}["e-1"] == "preempted"
                assert states(result)["e-1"] == "failed"
                await wait_for(lambda: nodes["e-1"].live.active == sid, 5, "e-1 live")
                assert nodes["e-2"].live.active == ""
                late = await phone(addr, ADMIN, {"zones": ["a"]})
                refused = await next_msg(late, "error")
                assert "emergency is on air" in refused["detail"]
                await urgent.close()
                await wait_for(lambda: sid in nodes["e-1"].live.ended, 5, "e-1 stops")
                # the waiting normal session goes on air once the emergency is over
                assert (await next_msg(normal, "state", timeout=15))["state"] in ("live", "waiting")
                await normal.close()
            finally:
                await asyncio.gather(*(n.stop() for n in nodes.values()))
