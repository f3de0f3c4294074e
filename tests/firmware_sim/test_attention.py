"""The simulated unit's attention tone (firmware_sim/attention.py through firmware_sim/download.py),
on the fake NodeIO of test_parts: an emergency's manifest sounds the config's tone at once — before
any chunk — once per broadcast, over what plays, and says so in its ack; a tone that fails its checksum is not
sounded, is reported, and the speech still downloads and plays."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from devices.protocol import (
    AckState,
    AttentionTone,
    Manifest,
    NodeConfig,
    Priority,
    encode,
)
from firmware_sim.download import Downloads
from firmware_sim.faults import Faults
from firmware_sim.playlog import PlayLog, read_play_log, starts, tones
from tests.firmware_sim.test_parts import NOW, FakeIO, _bcast, _io, _player, until

TONE = bytes(range(256)) * 12


def _config(tone: bytes | None = TONE) -> NodeConfig:
    att = None if tone is None else AttentionTone(
        sha256=hashlib.sha256(tone).hexdigest(), duration_ms=1000, data=base64.b64encode(tone).decode())
    return NodeConfig(node_id="n-1", groups=["all"], attention=att)


def _emergency(bc: str) -> tuple[Manifest, list[bytes]]:
    m, frames = _bcast(bc)
    return m.model_copy(update={"priority": Priority.EMERGENCY}), frames


async def test_an_emergency_manifest_sounds_the_tone_at_once_and_once(tmp_path: Path) -> None:
    io = _io()
    log = PlayLog(tmp_path / "play.jsonl")
    player = _player(io, time_scale=0.001)
    player.play_log = log
    cfg = _config()
    dl = Downloads(io, player, repair_idle_s=60.0, blobs=None, keep_audio=False, config=lambda: cfg)
    m, frames = _emergency("b-1")
    dl.on_manifest("x", "b-1", encode(m))
    assert io.attention == [("b-1", "sounded")] and player.tones == ["b-1"]  # no chunk has come yet
    assert io.acked == [("b-1", AckState.RECEIVING, "", 0)]  # the ack that carried it
    dl.on_manifest("x", "b-1", encode(m))  # the retained manifest again: no second tone
    normal, _ = _bcast("b-2")
    dl.on_manifest("x", "b-2", encode(normal))  # not an emergency: no tone
    assert player.tones == ["b-1"] and io.attention == [("b-1", "sounded")]
    for f in frames:
        dl.on_chunk("b-1", f)
    assert io.acked[-1] == ("b-1", AckState.VERIFIED, "", None)
    assert player.start("b-1", float(io.now_ms))  # the play comes: the speech follows the tone
    await until(lambda: "b-1" in player.played, "the speech played")
    log.close()
    events = read_play_log(tmp_path / "play.jsonl")
    assert tones(events) == {("n-1", "b-1"): 1} and starts(events) == {("n-1", "b-1"): 1}
    assert [e.event for e in events] == ["tone", "start", "end"] and events[0].offset_ms == 1000


async def test_a_tone_that_fails_its_checksum_is_reported_and_the_speech_still_plays() -> None:
    io = _io(faults=Faults(tone_corrupt=True))  # the kept copy has a flipped byte
    player = _player(io, time_scale=0.001)
    cfg = _config()
    dl = Downloads(io, player, repair_idle_s=60.0, blobs=None, keep_audio=False, config=lambda: cfg)
    m, frames = _emergency("b-1")
    dl.on_manifest("x", "b-1", encode(m))
    assert io.attention == [("b-1", "mismatch")] and player.tones == []  # reported, not sounded
    for f in frames:
        dl.on_chunk("b-1", f)
    assert player.start("b-1", float(io.now_ms))
    await until(lambda: "b-1" in player.played, "the speech played")
    assert io.acked[-1] == ("b-1", AckState.PLAYED, "", None)


async def test_no_tone_in_the_config_is_missing_and_a_tone_sounds_over_a_normal_broadcast() -> None:
    io: FakeIO = _io()
    player = _player(io)
    cfgs: list[NodeConfig] = [_config(None)]
    dl = Downloads(io, player, repair_idle_s=60.0, blobs=None, keep_audio=False, config=lambda: cfgs[-1])
    dl.on_manifest("x", "b-0", encode(_emergency("b-0")[0]))
    assert io.attention == [("b-0", "missing")]
    normal, frames = _bcast("b-1", hold=False)
    dl.on_manifest("x", "b-1", encode(normal))
    for f in frames:
        dl.on_chunk("b-1", f)
    await until(lambda: player.playing == "b-1", "the normal broadcast playing")
    cfgs.append(_config())  # a new retained config brings the tone
    dl.on_manifest("x", "b-2", encode(_emergency("b-2")[0].model_copy(update={"expires_at": NOW + 9000})))
    assert io.attention[-1] == ("b-2", "sounded") and player.tones == ["b-2"]
    # the normal one is not ended by the tone (nor reported): the controller's stop decides
    assert player.playing == "b-1" and not any(a[1] == AckState.FAILED for a in io.acked)
