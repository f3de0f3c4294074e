"""What a unit does in the corners docs/protocol.md §3 names for firmware writers (issue 13, D15):
a manifest withdrawn while receiving, when ``receiving`` is sent and what ``have`` carries, a
``play`` that comes due while another broadcast of the same class plays. Parts of a simulated
node on the fake NodeIO of test_parts (no broker, fake clock)."""

from __future__ import annotations

import pytest

from devices.protocol import AckState, encode
from firmware_sim.download import Downloads
from tests.fakes import until
from tests.firmware_sim.test_parts import NOW, _bcast, _io, _player

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


async def test_receiving_is_sent_once_and_again_only_per_manifest_and_a_withdrawal_is_silent() -> None:
    io = _io()
    dl = Downloads(io, _player(io), repair_idle_s=60.0, blobs=None, keep_audio=False)
    m, frames = _bcast("b-w")
    dl.on_manifest("x", "b-w", encode(m))
    dl.on_chunk("b-w", frames[0])  # progress: no ack of its own
    assert io.acked == [("b-w", AckState.RECEIVING, "", 0)]
    dl.on_manifest("x", "b-w", encode(m))  # the retained manifest again: current state, with have
    assert io.acked[-1] == ("b-w", AckState.RECEIVING, "", 1)
    dl.on_manifest("x", "b-w", b"")  # withdrawn by the controller while receiving
    dl.on_chunk("b-w", frames[1])
    assert len(io.acked) == 2 and "b-w" not in dl and dl.progress("b-w") is None
    assert "b-w" not in io.finished  # not finished: nothing is remembered


async def test_have_is_only_in_receiving_acks() -> None:
    io = _io()
    dl = Downloads(io, _player(io), repair_idle_s=60.0, blobs=None, keep_audio=False)
    m, frames = _bcast("b-h")
    dl.on_manifest("x", "b-h", encode(m))
    for f in frames:
        dl.on_chunk("b-h", f)
    assert [(state, have) for _, state, _, have in io.acked] == [(AckState.RECEIVING, 0),
                                                                 (AckState.VERIFIED, None)]


@pytest.mark.parametrize(("waited_ms", "outcome"), [(200, "joins at 200 ms"), (400, "too_late")])
async def test_a_play_due_while_the_same_class_plays_waits_then_joins_mid_way(waited_ms: int,
                                                                             outcome: str) -> None:
    # Two held normal broadcasts of 300 ms, both told to start at NOW. The first plays; the second
    # waits for it (same class: no pre-emption). When it can start, the unit's clock shows
    # NOW + waited_ms: it joins that far into its audio, in step with units that started at NOW,
    # or, past its end, finishes failed/too_late without playing.
    io = _io()
    player = _player(io, time_scale=0.2)  # the first one "plays" 60 ms of real time
    for bc in ("b-1", "b-2"):
        m, frames = _bcast(bc)
        player.enqueue(m, b"".join(f[24:] for f in frames))
    assert player.start("b-1", NOW) and player.start("b-2", NOW)
    assert player.playing == "b-1" and player.state_of("b-2") is AckState.VERIFIED
    io.now_ms = NOW + waited_ms
    await until(lambda: "b-1" in player.played, "the first one played", 30)
    if outcome == "too_late":
        assert io.acked[-1] == ("b-2", AckState.FAILED, "too_late", None) and "b-2" not in player.started
    else:
        assert player.playing == "b-2" and player.start_times["b-2"][1] == waited_ms
