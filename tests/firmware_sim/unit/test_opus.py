"""The unit agent decodes the contract's ``opus`` codec (Ogg Opus as tts/audio.py encodes it) itself:
what it decodes is what ffmpeg's libopus decoder gives (same samples, same length: pre-skip and end
trimming honoured), at every output rate, from any offset, a block at a time; a damaged, truncated
or foreign file is a DecodeError (never another exception, never a hang), and so is a board
without libopus, naming the package to install. No broker, no sound server."""

from __future__ import annotations

import array
import audioop
import random
import struct
import tracemalloc

import pytest

from firmware_sim.unit import libopus, ogg
from firmware_sim.unit.decode import DecodeError, duration_ms, pcm_blocks
from firmware_sim.unit.doctor import opus_check
from firmware_sim.unit.opus import OpusFile
from tests.firmware_sim.unit.conftest import TEXT
from tests.firmware_sim.unit.sound import correlation, envelope, ffmpeg_decode

pytestmark = pytest.mark.timeout(120)


def samples(audio: bytes, rate: int = 48000, **kw: int) -> array.array[int]:
    a = array.array("h")
    for block in pcm_blocks(audio, "opus", rate, **kw):
        a.frombytes(block)
    return a


def pearson(a: array.array[int], b: array.array[int]) -> float:
    return correlation([float(x) for x in a], [float(y) for y in b])


@pytest.fixture(scope="module")
def speech() -> bytes:
    from tts.audio import encode, tidy
    from tts.espeak import EspeakEngine

    return encode(tidy(EspeakEngine().synthesize(TEXT, voice="vi", speed=1.0)), codec="opus")


@pytest.fixture(scope="module")
def long_speech() -> bytes:
    """About two minutes: the speech 25 times over, encoded as the controller encodes a bulletin."""
    from tts.audio import encode
    from tts.espeak import EspeakEngine

    return encode(EspeakEngine().synthesize(TEXT, voice="vi", speed=1.0) * 25, codec="opus")


def rewritten(audio: bytes, page: ogg.Page, body: bytes) -> bytes:
    """``audio`` with ``page``'s body replaced (same length) and its CRC made right again."""
    raw = bytearray(audio[page.start:page.end])
    raw[page.body - page.start:] = body
    raw[22:26] = b"\0\0\0\0"
    struct.pack_into("<I", raw, 22, ogg.crc(bytes(raw)))
    return audio[:page.start] + bytes(raw) + audio[page.end:]


def test_it_decodes_what_ffmpegs_libopus_decodes(speech: bytes) -> None:
    ref = ffmpeg_decode(speech)
    got = samples(speech)
    assert len(got) == len(ref), "pre-skip or end trimming differs from ffmpeg's"
    assert pearson(got, ref) >= 0.999
    assert duration_ms(speech, "opus") == len(ref) * 1000 // 48000


@pytest.mark.parametrize("rate", [8000, 12000, 16000, 24000, 22050, 44100])
def test_every_output_rate(speech: bytes, rate: int) -> None:
    # libopus's own rates are decoded at directly; 22.05 and 44.1 kHz are decoded at 48 kHz, resampled
    ref = ffmpeg_decode(speech, rate)
    blocks = list(pcm_blocks(speech, "opus", rate, block_s=0.02))
    assert {len(b) for b in blocks[:-1]} == {int(rate * 0.02) * 2}, "not 20 ms blocks"
    got = array.array("h", b"".join(blocks))
    assert abs(len(got) - len(ref)) <= 2
    r = correlation(envelope(got, rate), envelope(ref, rate))
    assert r >= 0.99, f"at {rate} Hz the envelope correlation with ffmpeg's is {r:.3f}"


def test_it_starts_mid_way(speech: bytes, long_speech: bytes) -> None:
    whole = samples(speech)
    tail = samples(speech, offset_ms=1500)
    assert len(tail) == len(whole) - 1500 * 48
    assert pearson(tail, whole[1500 * 48:]) >= 0.999
    assert samples(speech, offset_ms=60_000) == array.array("h")
    # a late join near the end of a long file decodes from a page near the offset, not from the start
    f = OpusFile(long_speech)
    page, at = f.seek(f.head.pre_skip + 100_000 * 48)
    assert page > f.first and 100_000 * 48 - 2 * 48000 <= at <= 100_000 * 48 - 3840 + f.head.pre_skip
    tail = samples(long_speech, offset_ms=100_000)
    assert len(tail) == f.samples - 100_000 * 48
    ref = ffmpeg_decode(long_speech)[100_000 * 48:]
    assert pearson(tail, ref) >= 0.999


def test_the_headers_output_gain_is_applied(speech: bytes) -> None:
    pages = ogg.index(speech)
    head = bytearray(speech[pages[0].body:pages[0].end])
    struct.pack_into("<h", head, 16, -1541)  # -6.02 dB in Q7.8: half the amplitude
    quieter = samples(rewritten(speech, pages[0], bytes(head)))
    whole = samples(speech)
    ratio = audioop.rms(quieter.tobytes(), 2) / audioop.rms(whole.tobytes(), 2)
    assert abs(ratio - 0.5) < 0.02, ratio


def test_a_long_file_is_never_held_decoded(long_speech: bytes) -> None:
    total = 0
    tracemalloc.start()
    try:
        for block in pcm_blocks(long_speech, "opus", 48000):
            total += len(block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total >= 100 * 48000 * 2  # over 100 s decoded (9+ MB) ...
    assert peak < 500_000, f"... holding {peak} bytes at most"


def test_a_damaged_file_is_a_decode_error(speech: bytes) -> None:
    pages = ogg.index(speech)
    mid = pages[len(pages) // 2]
    broken = bytearray(speech)
    broken[mid.body + 10] ^= 0x55
    with pytest.raises(DecodeError, match="CRC"):
        next(pcm_blocks(bytes(broken), "opus", 48000))
    with pytest.raises(DecodeError, match="CRC"):
        duration_ms(bytes(broken), "opus")
    head = rewritten(speech, pages[0], speech[pages[0].body:pages[0].end].replace(b"OpusHead", b"OpusHEAD"))
    with pytest.raises(DecodeError, match="OpusHead"):
        next(pcm_blocks(head, "opus", 48000))


def test_a_truncated_file_is_a_decode_error(speech: bytes) -> None:
    pages = ogg.index(speech)
    with pytest.raises(DecodeError, match="truncated"):
        next(pcm_blocks(speech[: len(speech) * 2 // 3], "opus", 48000))
    with pytest.raises(DecodeError, match="truncated"):  # cut at a page boundary: no last page
        next(pcm_blocks(speech[: pages[-1].start], "opus", 48000))
    dropped = speech[: pages[2].start] + speech[pages[3].start:]
    with pytest.raises(DecodeError, match="missing"):
        next(pcm_blocks(dropped, "opus", 48000))


def test_what_is_not_ogg_opus_is_a_decode_error(speech: bytes, bulletin: bytes) -> None:
    for data in (b"", b"OggS", bytes(300), bulletin, speech[:27] + speech[28:]):
        with pytest.raises(DecodeError):
            list(pcm_blocks(data, "opus", 48000))
    pages = ogg.index(speech)
    head = bytearray(speech[pages[0].body:pages[0].end])
    head[18] = 1  # channel mapping family 1: a multichannel stream
    with pytest.raises(DecodeError, match="mapping family 1"):
        list(pcm_blocks(rewritten(speech, pages[0], bytes(head)), "opus", 48000))


def test_damaged_audio_inside_good_pages_never_crashes_or_hangs(speech: bytes) -> None:
    # the bytes reach libopus: each damaged file decodes (to noise) or is a DecodeError, nothing else
    rng = random.Random(17)
    pages = ogg.index(speech)
    outcomes = {"decoded": 0, "refused": 0}
    longest = len(samples(speech)) + 48000
    for _ in range(120):
        page = pages[rng.randrange(len(pages))]
        body = bytearray(speech[page.body:page.end])
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        try:
            got = samples(rewritten(speech, page, bytes(body)))
            assert len(got) <= longest
            outcomes["decoded"] += 1
        except DecodeError:
            outcomes["refused"] += 1
    assert outcomes["decoded"] and outcomes["refused"], outcomes


def test_a_board_without_libopus_says_what_to_install(speech: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libopus, "NAMES", ("libopus-not-here.so.0",))
    with pytest.raises(DecodeError, match="apt-get install libopus0"):
        next(pcm_blocks(speech, "opus", 48000))
    with pytest.raises(libopus.OpusError, match="libopus0"):
        libopus.version()
    check = opus_check()  # and `loaphuong unit doctor` says so
    assert check.status == "WARN" and "apt-get install libopus0" in check.detail, check


def test_the_doctor_sees_libopus() -> None:
    check = opus_check()
    assert check.status == "PASS" and check.detail.startswith("libopus "), check
