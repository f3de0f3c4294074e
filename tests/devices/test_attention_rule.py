"""The attention-tone rule of devices/node_rules.py (docs/protocol.md §1 config ``attention``, §3
emergency): when a unit sounds its local tone, and what its checksum check says."""

from __future__ import annotations

import base64
import hashlib

from devices import protocol as p

TONE = b"ID3 not really an mp3, but bytes of a tone" * 10
NOW = 1_795_300_000_000


def tone(data: bytes = TONE, *, sha_of: bytes | None = None) -> p.AttentionTone:
    return p.AttentionTone(sha256=hashlib.sha256(sha_of if sha_of is not None else data).hexdigest(),
                           duration_ms=1000, data=base64.b64encode(data).decode())


def manifest(bc: str = "b-1", priority: p.Priority = p.Priority.EMERGENCY, expires_at: int = NOW + 60_000
             ) -> p.Manifest:
    audio = p.AudioInfo(sha256="0" * 64, size=10, chunk_size=16384, chunks=1, duration_ms=1000)
    return p.Manifest(bc=bc, priority=priority, audio=audio, expires_at=expires_at, hold=True)


def test_the_config_carries_the_tone_and_its_checksum() -> None:
    cfg = p.NodeConfig(node_id="u-1", groups=["all"], attention=tone())
    back = p.decode(p.NodeConfig, p.encode(cfg))
    assert back.attention is not None and p.tone_bytes(back.attention) == TONE
    assert p.tone_check(back.attention, p.tone_bytes(back.attention)) == p.TONE_SOUNDED
    assert p.decode(p.NodeConfig, p.encode(p.NodeConfig(node_id="u-1"))).attention is None  # optional


def test_a_kept_tone_that_fails_its_checksum_is_a_mismatch_and_none_is_missing() -> None:
    good = tone()
    assert p.tone_check(good, TONE[:-1] + b"X") == p.TONE_MISMATCH  # a bad flash copy
    assert p.tone_check(tone(sha_of=b"other"), TONE) == p.TONE_MISMATCH  # a bad transfer
    assert p.tone_check(None, TONE) == p.TONE_MISSING
    assert p.tone_check(good, None) == p.TONE_MISSING
    assert p.tone_bytes(p.AttentionTone(sha256="0" * 64, duration_ms=1, data="not base64!")) == b""


def test_the_tone_sounds_once_per_emergency_not_for_other_classes_nor_finished_or_expired() -> None:
    finished = p.FinishedLog()
    sounded: set[str] = set()

    def due(m: p.Manifest) -> bool:
        return p.attention_due(m, controller_now_ms=NOW, finished=finished, sounded=sounded)

    assert due(manifest())
    sounded.add("b-1")
    assert not due(manifest())  # the retained manifest again: no second tone
    assert not due(manifest("b-2", p.Priority.PRIORITY)) and not due(manifest("b-3", p.Priority.NORMAL))
    assert not due(manifest("b-4", expires_at=NOW - 1))
    finished.finish("b-5", p.AckState.PLAYED, "")
    assert not due(manifest("b-5"))
    assert due(manifest("b-6"))


def test_an_ack_reports_the_tone_and_old_acks_still_decode() -> None:
    ack = p.Ack(node_id="u-1", bc="b-1", state=p.AckState.RECEIVING, have=0, attention=p.TONE_MISMATCH)
    assert p.decode(p.Ack, p.encode(ack)).attention == "mismatch"
    assert p.decode(p.Ack, b'{"v":1,"ts":1,"node_id":"u-1","bc":"b-1","state":"verified"}').attention == ""
