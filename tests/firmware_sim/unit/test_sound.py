"""The unit agent plays through a real sound server: what came out of the (null) sink is the
bulletin — its duration, its shape — and it came out on the planned instant, in both of the
contract's codecs (MP3, and Ogg Opus as a ward whose speech settings choose ``opus`` sends it);
two agents on one plan sound together, even when one board's clock is wrong (the contract's time
sync disciplines it)."""

from __future__ import annotations

import array
import asyncio
from typing import Literal

import pytest

from devices.conformance.harness import Harness
from devices.messages import now_ms
from firmware_sim.unit.decode import duration_ms, pcm_blocks
from tests.firmware_sim.unit.conftest import Rig, spoken
from tests.firmware_sim.unit.sound import RATE, Recorder, correlation, envelope, ffmpeg_decode, loud_span_ms

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(240)]


def decoded(audio: bytes, codec: str = "mp3") -> array.array[int]:
    """The file as the speaker should put it out (Opus: decoded by ffmpeg, not by the agent)."""
    if codec == "opus":
        return ffmpeg_decode(audio, RATE)
    a = array.array("h")
    for block in pcm_blocks(audio, "mp3", RATE):
        a.frombytes(block)
    return a


async def offer_and_play(h: Harness, audio: bytes, at: int, codec: Literal["mp3", "opus"] = "mp3") -> str:
    b = spoken(h, audio, duration_ms(audio, codec), codec=codec)
    await h.offer(b)
    assert await h.wait(lambda: "verified" in h.states(b.bc), 20), h.states(b.bc)
    _cmd, resp = await h.call("play", {"bc": b.bc, "at": at, "offset_ms": 0})
    assert resp is not None and resp.get("status") == "ok", resp
    return b.bc


@pytest.mark.parametrize("codec", ["mp3", "opus"])
async def test_the_bulletin_comes_out_on_the_instant(rig: Rig, bulletin: bytes, opus_bulletin: bytes,
                                                     codec: Literal["mp3", "opus"]) -> None:
    audio = opus_bulletin if codec == "opus" else bulletin
    _agent, h = await rig.unit(f"loa-a-{codec}", "lp_a")
    with Recorder(rig.pulse.server, "lp_a") as rec:
        at = now_ms() + 2000
        bc = await offer_and_play(h, audio, at, codec)
        assert await h.wait(lambda: "played" in h.states(bc), 30), h.states(bc)
        await asyncio.sleep(0.3)  # the recorder's last blocks (the tail of the bulletin)
    onset = rec.onset()
    assert onset is not None, "nothing came out of the sink"
    index, wall = onset
    # the first sound of the bulletin is its first loud sample, which the file has after its padding
    ref = decoded(audio, codec)
    lead_in_ms = next(i for i, v in enumerate(ref) if abs(v) > 1500) * 1000 / RATE
    error_ms = wall * 1000 - (at + lead_in_ms)
    assert abs(error_ms) <= 50, f"the sound started {error_ms:+.1f} ms from the planned instant"
    got = rec.samples()[index:]
    assert abs(loud_span_ms(got, RATE) - loud_span_ms(ref, RATE)) <= 40, "not the bulletin's duration"
    start = int(lead_in_ms * RATE / 1000)
    r = correlation(envelope(got, RATE), envelope(ref[start:], RATE))
    assert r >= 0.9, f"what came out does not match the bulletin (envelope correlation {r:.2f})"
    assert h.states(bc)[-2:] == ["playing", "played"]


async def test_two_units_on_one_plan_sound_together(rig: Rig, bulletin: bytes) -> None:
    # unit B's board clock is 7 s slow (no RTC, never set): the time sync must put it in step
    _a, ha = await rig.unit("loa-b1", "lp_b")
    b, hb = await rig.unit("loa-b2", "lp_c", clock_offset_ms=-7000)
    assert abs((b.node.sync.offset_ms or 0) - 7000) < 50
    with Recorder(rig.pulse.server, "lp_b") as ra, Recorder(rig.pulse.server, "lp_c") as rb:
        at = now_ms() + 2500
        bca, bcb = await asyncio.gather(offer_and_play(ha, bulletin, at), offer_and_play(hb, bulletin, at))
        assert await ha.wait(lambda: "played" in ha.states(bca) and "played" in hb.states(bcb), 30)
    oa, ob = ra.onset(), rb.onset()
    assert oa is not None and ob is not None
    apart_ms = abs(oa[1] - ob[1]) * 1000
    assert apart_ms <= 20, f"the two units started {apart_ms:.1f} ms apart"
