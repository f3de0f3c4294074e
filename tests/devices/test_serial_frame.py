"""Serial framing (docs/protocol.md §7.2): property tests of the decoder against split, noisy
and bit-flipped streams. No I/O: the decoder is fed bytes directly."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.serial.frame import ESC, FLAG, MAX_PAYLOAD, Frame, FrameDecoder, crc16, encode_frame
from devices.serial.wire import BoardStatus, Cmd, Reply

frames_st = st.builds(
    Frame,
    addr=st.integers(0, 255),
    seq=st.integers(0, 255),
    type=st.integers(0, 255),
    # bias payloads towards the bytes that need stuffing
    payload=st.lists(st.sampled_from([FLAG, ESC, 0x5E, 0x5D, 0x00, 0xFF]) | st.integers(0, 255),
                     max_size=MAX_PAYLOAD).map(bytes),
)
streams_st = st.lists(frames_st, min_size=1, max_size=6)
garbage_st = st.binary(max_size=80) | st.lists(st.sampled_from([FLAG, ESC, 0x00, 0x06]),
                                               max_size=20).map(bytes)


def decode_all(data: bytes, cuts: list[int] | None = None) -> tuple[list[Frame], FrameDecoder]:
    dec = FrameDecoder()
    out: list[Frame] = []
    edges = [0, *sorted(cuts or []), len(data)]
    for a, b in itertools.pairwise(edges):
        out += dec.feed(data[a:b])
    return out, dec


def test_crc_is_ccitt_false_and_frame_layout_is_as_documented() -> None:
    # After: the check value of CRC-16/CCITT-FALSE holds, and a POLL to address 5 seq 1 is
    # exactly FLAG, LEN=0, ADDR, SEQ, TYPE, CRC big-endian, FLAG (no byte needs stuffing).
    assert crc16(b"123456789") == 0x29B1
    body = bytes([0, 5, 1, Cmd.POLL])
    crc = crc16(body)
    assert encode_frame(Frame(5, 1, Cmd.POLL)) == bytes([FLAG, *body, crc >> 8, crc & 0xFF, FLAG])
    # a 0x7E in the payload travels as 0x7D 0x5E
    wire = encode_frame(Frame(1, 2, Cmd.VOLUME, bytes([FLAG])))
    assert bytes([ESC, 0x5E]) in wire and wire.count(FLAG) == 2


@given(streams_st, st.data())
@settings(max_examples=200, deadline=None)
def test_stream_split_anywhere_gives_every_frame_back(frames: list[Frame], data: st.DataObject) -> None:
    # After: however the byte stream is cut into reads, the decoder returns exactly the frames
    # sent, in order, and counts no error.
    wire = b"".join(encode_frame(f) for f in frames)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=len(wire)))
    got, dec = decode_all(wire, cuts)
    assert got == frames and dec.stats.errors == 0


@given(frames_st)
@settings(max_examples=60, deadline=None)
def test_single_frame_split_at_every_offset(frame: Frame) -> None:
    # After: for every offset (and every pair of offsets) the frame is recovered exactly once.
    wire = encode_frame(frame)
    for i in range(len(wire) + 1):
        assert decode_all(wire, [i])[0] == [frame]
    for i in range(0, len(wire), 3):
        for j in range(i, len(wire), 5):
            assert decode_all(wire, [i, j])[0] == [frame]


@given(streams_st, st.lists(garbage_st, min_size=7, max_size=7), st.data())
@settings(max_examples=300, deadline=None)
def test_garbage_before_between_and_after_frames(frames: list[Frame], garbage: list[bytes],
                                                 data: st.DataObject) -> None:
    # After: noise anywhere outside the frames (including flags and escape bytes) never costs a
    # valid frame and never produces a frame that was not sent; memory stays bounded.
    wire = garbage[0] + b"".join(encode_frame(f) + garbage[i + 1] for i, f in enumerate(frames))
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8))
    got, dec = decode_all(wire, cuts)
    assert got == frames
    assert len(dec._buf) <= dec._max_raw


@given(streams_st, st.data())
@settings(max_examples=300, deadline=None)
def test_single_bit_flip_never_yields_a_bad_frame(frames: list[Frame], data: st.DataObject) -> None:
    # After: with one bit flipped anywhere, the frame holding it is dropped (never accepted
    # altered) and every other frame is still recovered, in order. CRC-16 detects every
    # single-bit error, and a flipped flag costs only its own frame (each frame has both flags).
    encoded = [encode_frame(f) for f in frames]
    wire = bytearray(b"".join(encoded))
    bit = data.draw(st.integers(0, len(wire) * 8 - 1))
    wire[bit // 8] ^= 1 << (bit % 8)
    starts = [sum(len(e) for e in encoded[:i]) for i in range(len(encoded))]
    hit = max(i for i, s in enumerate(starts) if s <= bit // 8)
    got, dec = decode_all(bytes(wire), data.draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    assert got == frames[:hit] + frames[hit + 1:]
    assert dec.stats.errors >= 1 or dec._buf  # dropped, or (closing flag hit) still unterminated


@pytest.mark.parametrize("payload", [b"", bytes([FLAG, ESC, 0x20, 0x5E]), bytes(range(64))])
def test_every_single_bit_flip_of_a_frame_is_rejected(payload: bytes) -> None:
    # After: exhaustively, for all 8*len bit positions, the flipped frame is never accepted and
    # the next (clean) frame is always recovered.
    frame, after = Frame(7, 200, Reply.ACK, payload), Frame(8, 1, Cmd.POLL)
    wire, tail = encode_frame(frame), encode_frame(after)
    for bit in range(len(wire) * 8):
        bad = bytearray(wire)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert decode_all(bytes(bad) + tail)[0] == [after], f"bit {bit}"


def test_random_noise_never_crashes_and_memory_is_bounded() -> None:
    # After: a megabyte of random bytes (seeded) decodes without an exception, the buffer never
    # exceeds the largest frame, and whatever passes the CRC by chance is counted as a frame.
    rng = random.Random(5)
    dec = FrameDecoder()
    for _ in range(256):
        dec.feed(rng.randbytes(4096))
        assert len(dec._buf) <= dec._max_raw
    assert dec.stats.dropped_bytes > 900_000 and dec.stats.frames <= 5


@given(st.builds(BoardStatus, power=st.booleans(), relay=st.booleans(), volume=st.integers(0, 100),
                 input=st.integers(0, 2), faults=st.integers(0, 7), uptime_s=st.integers(0, 2**32 - 1),
                 fw=st.tuples(st.integers(0, 255), st.integers(0, 255))))
def test_status_block_round_trips(status: BoardStatus) -> None:
    # After: the 10-byte status block carries every field unchanged.
    assert BoardStatus.unpack(status.pack()) == status


def test_status_block_rejects_wrong_size_and_range() -> None:
    # After: a short block or a volume above 100 is refused with ValueError (never a crash).
    with pytest.raises(ValueError):
        BoardStatus.unpack(b"\x00" * 9)
    with pytest.raises(ValueError):
        BoardStatus.unpack(bytes([0, 101]) + b"\x00" * 8)
