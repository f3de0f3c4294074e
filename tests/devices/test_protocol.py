"""The wire contract: payload validation and audio framing (property-based)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import protocol as p


@settings(max_examples=60, deadline=None)
@given(audio=st.binary(min_size=1, max_size=70_000), chunk_size=st.integers(min_value=1, max_value=20_000),
       order=st.randoms(use_true_random=False))
def test_chunks_reassemble_in_any_order_with_duplicates(audio: bytes, chunk_size: int, order: object) -> None:
    info, frames = p.chunk_audio(audio, duration_ms=1000, chunk_size=chunk_size)
    assert info.chunks == len(frames) == -(-len(audio) // chunk_size)
    assert info.sha256 == hashlib.sha256(audio).hexdigest()
    shuffled = frames + frames[: len(frames) // 2]
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    r = p.Reassembler(info)
    for f in shuffled:
        assert r.add(p.parse_chunk(f))
    assert r.missing() == [] and r.assemble() == audio


@settings(max_examples=200, deadline=None)
@given(audio=st.binary(min_size=1, max_size=3000), bit=st.integers(min_value=0))
def test_any_single_bit_flip_is_caught(audio: bytes, bit: int) -> None:
    _, frames = p.chunk_audio(audio, duration_ms=10, chunk_size=1024)
    frame = bytearray(frames[0])
    pos = bit % (len(frame) * 8)
    frame[pos // 8] ^= 1 << (pos % 8)
    with pytest.raises(p.ChunkError):
        p.parse_chunk(bytes(frame))


@settings(max_examples=100, deadline=None)
@given(junk=st.binary(max_size=200))
def test_garbage_never_parses_as_a_chunk(junk: bytes) -> None:
    with pytest.raises(p.ChunkError):
        p.parse_chunk(junk)


def test_chunk_of_another_file_is_refused_and_wrong_file_fails_verification() -> None:
    info_a, frames_a = p.chunk_audio(b"a" * 5000, duration_ms=10, chunk_size=1000)
    _, frames_b = p.chunk_audio(b"b" * 5000, duration_ms=10, chunk_size=1000)
    r = p.Reassembler(info_a)
    assert not r.add(p.parse_chunk(frames_b[0]))  # file tag differs
    assert r.missing() == [0, 1, 2, 3, 4]
    with pytest.raises(p.ChunkError, match="missing"):
        r.assemble()
    for f in frames_a:
        r.add(p.parse_chunk(f))
    assert r.assemble() == b"a" * 5000


def test_whole_file_checksum_guards_a_lying_manifest() -> None:
    info, frames = p.chunk_audio(b"x" * 3000, duration_ms=10, chunk_size=1000)
    lying = info.model_copy(update={"sha256": info.sha256[:16] + "0" * 48})
    r = p.Reassembler(lying)
    for f in frames:
        r.add(p.parse_chunk(f))
    with pytest.raises(p.ChunkError, match="sha256"):
        r.assemble()
    assert r.have == 0  # a file that failed verification is discarded


@pytest.mark.parametrize(("payload", "message"), [
    (b"{", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[]", "JSON object"),
    (b'{"v": 2, "node_id": "n", "bc": "b", "state": "played"}', "version"),
    (b'{"v": 1, "node_id": "n", "bc": "b", "state": "exploded"}', "state"),
    (b'{"v": 1, "node_id": "n", "state": "played"}', "bc"),
    (b'{"v": 1, "node_id": "n", "bc": "b", "state": "receiving", "have": -1}', "have"),
    (b" " * (p.MAX_JSON_PAYLOAD + 1), "exceeds"),
    (b'{"node_id": "n", "bc": "b", "state": "played"}', "version None"),
    (b'{"v": true, "node_id": "n", "bc": "b", "state": "played"}', "version True"),
    (b'{"v": 1, "node_id": "n", "bc": "b", "state": "receiving", "have": "3"}', "have"),
])
def test_bad_payloads_raise_payload_error_only(payload: bytes, message: str) -> None:
    with pytest.raises(p.PayloadError, match=message):
        p.decode(p.Ack, payload)


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    raw = {"v": 1, "node_id": "n-1", "bc": "b-1", "state": "played", "future_field": [1, 2]}
    ack = p.decode(p.Ack, json.dumps(raw).encode())
    assert ack.state == p.AckState.PLAYED and not hasattr(ack, "future_field")


def test_topics_round_trip_and_refuse_foreign_shapes() -> None:
    t = p.Topics("lp/tinh-x")
    assert t.parse_node_topic(t.ack("tdp1-01")) == ("tdp1-01", "ack")
    assert t.parse_node_topic("lp/tinh-x/node/tdp1-01/cmd") is None  # controller-owned leaf
    assert t.parse_node_topic("lp/tinh-x/node/BAD ID/ack") is None
    assert t.parse_node_topic("other/node/n/ack") is None
    scope = p.AudioScope(kind="group", id="tdp1")
    assert t.manifest(scope, "b-1") == "lp/tinh-x/group/tdp1/bcast/b-1/manifest"
    assert t.parse_bcast_topic(t.data(scope, "b-1")) == ("b-1", "data")
    assert "lp/tinh-x/group/tdp1/bcast/+/+" in t.group_subscriptions("tdp1")
    with pytest.raises(ValueError):
        p.Topics("lp/#")


def test_controller_payloads_are_validated_too() -> None:
    cfg = {"v": 1, "node_id": "n", "groups": ["all", "#"]}
    with pytest.raises(p.PayloadError, match="groups"):
        p.decode(p.NodeConfig, json.dumps(cfg).encode())
    info, _ = p.chunk_audio(b"z" * 5000, duration_ms=10, chunk_size=1000)
    manifest = {"v": 1, "bc": "b-1", "expires_at": 1, "audio": {**info.model_dump(), "chunks": 4}}
    with pytest.raises(p.PayloadError, match="chunks"):
        p.decode(p.Manifest, json.dumps(manifest).encode())
    manifest = {"v": 1, "bc": "../x", "expires_at": 1, "audio": info.model_dump()}
    with pytest.raises(p.PayloadError, match="bc"):
        p.decode(p.Manifest, json.dumps(manifest).encode())
    repair = {"v": 1, "node_id": "n", "bc": "b", "missing": list(range(p.MAX_REPAIR + 1))}
    with pytest.raises(p.PayloadError, match="missing"):
        p.decode(p.RepairRequest, json.dumps(repair).encode())
