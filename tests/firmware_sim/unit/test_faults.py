"""The unit agent under bad conditions: a sound card that goes away mid-play (the sound server
killed, or its sink's module unloaded while the server stays up: reported, retried, the bulletin
goes on in step when it is back, fails ``audio_fault`` if it is not), a full disk
(reported, the unit plays on), a corrupted stored attention tone (fetched again from the config),
the volume through the sound server's mixer."""

from __future__ import annotations

import array
import asyncio
import base64
import hashlib
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.conformance.harness import Bcast, Harness
from devices.messages import now_ms
from firmware_sim.unit.decode import duration_ms, pcm_blocks
from firmware_sim.unit.pulse import AUDIO_DEVICE
from tests.firmware_sim.unit.conftest import Rig, spoken
from tests.firmware_sim.unit.sound import RATE, PulseServer, Recorder, best_lag_ms, envelope

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(240)]


def faults_seen(h: Harness) -> set[str]:
    return {f for t in h.objs("telemetry") for f in t.get("faults", [])}


async def play(h: Harness, audio: bytes, *, repeat: int = 1, in_ms: int = 1200, **kw: object) -> str:
    return (await play_bcast(h, audio, repeat=repeat, in_ms=in_ms, **kw)).bc


async def play_bcast(h: Harness, audio: bytes, *, repeat: int = 1, in_ms: int = 1200, **kw: object) -> Bcast:
    """Offer ``audio`` as a held broadcast and start it ``in_ms`` from now (asserted: verified, ok)."""
    b = spoken(h, audio, duration_ms(audio, "mp3"), repeat=repeat, **kw)  # type: ignore[arg-type]
    await h.offer(b)
    assert await h.wait(lambda: "verified" in h.states(b.bc), 20), h.states(b.bc)
    _cmd, resp = await h.call("play", {"bc": b.bc, "at": now_ms() + in_ms, "offset_ms": 0})
    assert resp is not None and resp.get("status") == "ok", resp
    return b


@pytest.fixture
def own_card() -> Iterator[PulseServer]:
    """A sound server of the test's own, with one card, that the test may pull out."""
    with PulseServer(("card",)) as server:
        yield server


async def test_a_sound_card_back_mid_play_goes_on_in_step(rig: Rig, own_card: PulseServer,
                                                          bulletin: bytes) -> None:
    agent, h = await rig.unit("loa-f1", "card", server=own_card.server)
    bc = await play(h, bulletin, repeat=4)  # ~11 s
    assert await h.wait(lambda: "playing" in h.states(bc), 20)
    own_card.stop()  # the card is pulled out
    try:
        assert await h.wait(lambda: AUDIO_DEVICE in faults_seen(h), 15), "the lost card was not reported"
    finally:
        own_card.start()  # and plugged in again
    with Recorder(own_card.server, "card") as rec:
        assert await h.wait(lambda: "played" in h.states(bc), 30), h.states(bc)
    assert rec.onset() is not None, "nothing came out after the card came back"
    assert h.states(bc).count("playing") == 1, "the broadcast started again instead of going on"
    assert await h.wait(lambda: AUDIO_DEVICE not in (h.objs("telemetry")[-1].get("faults") or []), 15)
    assert agent.node.running


async def test_a_sink_unloaded_mid_play_is_reported_retried_and_goes_on_in_step(
        rig: Rig, own_card: PulseServer, bulletin: bytes) -> None:
    agent, h = await rig.unit("loa-f6", "card", server=own_card.server)
    b = spoken(h, bulletin, duration_ms(bulletin, "mp3"), repeat=4)  # ~11 s
    await h.offer(b)
    assert await h.wait(lambda: "verified" in h.states(b.bc), 20), h.states(b.bc)
    at = now_ms() + 1200
    _cmd, resp = await h.call("play", {"bc": b.bc, "at": at, "offset_ms": 0})
    assert resp is not None and resp.get("status") == "ok", resp
    assert await h.wait(lambda: "playing" in h.states(b.bc), 20)
    await asyncio.to_thread(own_card.unload_sink, "card")  # the server stays up, its only card is gone
    assert await h.wait(lambda: AUDIO_DEVICE in faults_seen(h), 15), "the lost card was not reported"
    assert "playing" in h.states(b.bc)[-1:] and agent.node.running  # not failed: it keeps trying
    await asyncio.to_thread(own_card.load_sink, "card")  # plugged in again: nobody tells the unit
    with Recorder(own_card.server, "card") as rec:
        assert await h.wait(lambda: "played" in h.states(b.bc), 30), h.states(b.bc)
    onset = rec.onset()
    assert onset is not None, "nothing came out after the card came back"
    assert h.states(b.bc).count("playing") == 1, "the broadcast started again instead of going on"
    # in step: what came out after the card came back is the bulletin at the point the zone reached
    ref = array.array("h")
    for _ in range(4):
        for block in pcm_blocks(bulletin, "mp3", RATE):
            ref.frombytes(block)
    index, wall = onset
    got = envelope(rec.samples()[index:index + RATE * 3 // 2], RATE)
    expected = round((wall * 1000 - at) / 10)  # 10 ms blocks into the four repeats
    lag, r = best_lag_ms(got, envelope(ref, RATE), expected, search=50)
    assert r >= 0.8 and abs(lag) <= 50, f"resumed {lag:+.0f} ms off the zone's point (correlation {r:.2f})"
    assert await h.wait(lambda: AUDIO_DEVICE not in (h.objs("telemetry")[-1].get("faults") or []), 15)


async def test_a_sound_card_that_stays_gone_fails_the_broadcast(rig: Rig, own_card: PulseServer,
                                                                bulletin: bytes) -> None:
    _agent, h = await rig.unit("loa-f2", "card", server=own_card.server)
    own_card.stop()
    try:
        bc = await play(h, bulletin)
        assert await h.wait(lambda: "failed" in h.states(bc), 30), h.states(bc)
        ack = [a for a in h.acks(bc) if a.get("state") == "failed"][-1]
        assert ack.get("reason") == "audio_fault"
        assert AUDIO_DEVICE in faults_seen(h)
    finally:
        own_card.start()
    # the unit is still a unit: the next bulletin plays once the card is back
    bc2 = await play(h, bulletin)
    assert await h.wait(lambda: "played" in h.states(bc2), 30), h.states(bc2)


async def test_volume_goes_through_the_servers_mixer(rig: Rig, own_card: PulseServer) -> None:
    # its own server: the sink's volume stays as set, and the other tests' sinks at 100 %
    _agent, h = await rig.unit("loa-f3", "card", mixer="pulse", volume=35, server=own_card.server)
    _cmd, resp = await h.call("volume", {"level": 42})
    assert resp is not None and resp.get("status") == "ok", resp

    def level() -> int:
        out = own_card.pactl("get-sink-volume", "card")
        return int(re.findall(r"(\d+)%", out)[0])

    assert await h.wait(lambda: level() == 42, 10), own_card.pactl("get-sink-volume", "card")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of the test's own: the unit's state directory on a disk that can really fill."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs of the test's own needs root (the /dev/full test below still runs)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], check=True, timeout=10)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, timeout=10)


def fill(disk: Path) -> Path:
    """Fill ``disk`` until the kernel refuses a write (ENOSPC)."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        for _ in range(64):  # 16 MB in blocks of 512 KB, bounded
            try:
                f.write(b"\xff" * 512 * 1024)
                f.flush()
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC
                return filler
    raise AssertionError("the tmpfs never filled")


async def test_a_disk_that_fills_up_is_reported_and_the_unit_plays_on(
        rig: Rig, tiny_disk: Path, bulletin: bytes, caplog: pytest.LogCaptureFixture) -> None:
    agent, h = await rig.unit("loa-f7", "lp_a", state=str(tiny_disk / "unit"))
    assert await h.wait(lambda: h.objs("telemetry"), 15)
    assert "storage_full" not in faults_seen(h), faults_seen(h)
    filler = await asyncio.to_thread(fill, tiny_disk)
    assert await h.wait(lambda: "storage_full" in faults_seen(h), 15), faults_seen(h)
    assert h.objs("telemetry")[-1]["storage_free_kb"] < 64  # what the board has left, reported
    tone = tone_of(bulletin[:4000] if len(bulletin) > 4000 else bulletin)
    await h.config(groups=[], volume=80, attention=tone)  # the tone cannot be stored: kept in RAM
    bc1 = await play(h, bulletin, priority="emergency")
    first = await h.wait(lambda: h.acks(bc1))
    assert first and first[0].get("attention") == "sounded", first
    assert await h.wait(lambda: "played" in h.states(bc1), 30), h.states(bc1)
    assert agent.flash.fault == "storage_full"  # the finished memory was refused whole ...
    assert agent.node.running and agent.node.connected  # ... and nothing else gave way
    filler.unlink()  # room again: the next write stores everything, the fault clears
    bc2 = await play(h, bulletin)
    assert await h.wait(lambda: "played" in h.states(bc2), 30), h.states(bc2)
    stored = agent.flash.get("finished.json") or b""
    assert bc1.encode() in stored and bc2.encode() in stored, stored
    assert await h.wait(lambda: "storage_full" not in (h.objs("telemetry")[-1].get("faults") or []), 15)
    refused = [r.getMessage() for r in caplog.records
               if r.levelno >= logging.WARNING and r.getMessage().startswith("flash: cannot write")]
    assert len(refused) == len(set(m.split(":")[1] for m in refused)), refused  # once per item, not per retry


async def test_a_full_disk_is_reported_and_the_unit_plays_on(rig: Rig, bulletin: bytes) -> None:
    agent, h = await rig.unit("loa-f4", "lp_a")
    trap = agent.flash.dir / ".finished.json.tmp"
    os.symlink("/dev/full", trap)  # the next write of the finished memory meets a full disk (ENOSPC)
    bc = await play(h, bulletin)
    assert await h.wait(lambda: "played" in h.states(bc), 30), h.states(bc)
    assert await h.wait(lambda: "storage_full" in faults_seen(h), 15), faults_seen(h)
    bc2 = await play(h, bulletin)  # the disk has room again: stored, the fault clears
    assert await h.wait(lambda: "played" in h.states(bc2), 30)
    assert b'"' + bc2.encode() in (agent.flash.get("finished.json") or b"")


def tone_of(audio: bytes) -> dict[str, object]:
    return {"sha256": hashlib.sha256(audio).hexdigest(), "codec": "mp3",
            "duration_ms": duration_ms(audio, "mp3"), "data": base64.b64encode(audio).decode()}


async def test_a_corrupted_stored_tone_is_fetched_again(rig: Rig, bulletin: bytes, tmp_path: Path) -> None:
    tone = tone_of(bulletin[:4000] if len(bulletin) > 4000 else bulletin)
    agent, h = await rig.unit("loa-f5", "lp_a")
    await h.config(groups=[], volume=100, attention=tone)
    name = f"tone-{tone['sha256']}.mp3"
    agent.flash.put(name, b"\x00garbage: a flash cell gone bad")
    bc = await play(h, bulletin, priority="emergency")
    first = await h.wait(lambda: h.acks(bc))
    assert first and first[0].get("attention") == "sounded", first
    assert hashlib.sha256(agent.flash.get(name) or b"").hexdigest() == tone["sha256"]
    assert await h.wait(lambda: "played" in h.states(bc), 30)
