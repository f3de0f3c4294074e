"""Every unit's retained config carries the attention tone (controller/fleet/attention.py), made
once and kept in the audio store, so a second controller with an empty data directory hands out the
very same tone; broker-free on a FakeUnitBus."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from controller.core.audiostore import DbAudioStore
from controller.core.db import Database
from controller.fleet.attention import TONE_LABEL, attention_tone
from controller.fleet.presence import Presence
from devices import protocol as p
from tests.fakes import FakeUnitBus


class _NoWriter:
    def submit(self, op: object) -> None:
        pass

    def submit_row(self, apply: object, row: object) -> None:
        pass


async def test_configs_carry_the_kept_tone_and_its_checksum(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    db.migrate()
    store = DbAudioStore(db, tmp_path / "a" / "audio")
    tone = attention_tone(store)
    assert tone is not None and 0 < tone.duration_ms <= p.MAX_TONE_MS
    found = store.labelled(TONE_LABEL)
    assert found is not None and found.sha256 == tone.sha256
    kept = store.get(tone.sha256)
    assert 0 < len(kept) <= p.MAX_TONE_BYTES and hashlib.sha256(kept).hexdigest() == tone.sha256
    assert attention_tone(store) == tone  # the stored tone again, not a new one
    other = DbAudioStore(db, tmp_path / "b" / "audio")  # another controller, nothing on its disk
    assert attention_tone(other) == tone and other.stats["db_reads"] == 1
    db.dispose()
    bus = FakeUnitBus()
    presence = Presence(bus, _NoWriter(), attention=tone)  # type: ignore[arg-type]
    presence.provision("u-1", ["z"])
    await presence.publish_configs()
    [pub] = bus.on_topic("/node/u-1/config")
    cfg = p.decode(p.NodeConfig, pub.payload)
    assert pub.retain and cfg.attention == tone and base64.b64decode(cfg.attention.data) == kept
    assert len(pub.payload) < p.MAX_JSON_PAYLOAD  # a unit accepts it
    assert p.tone_check(cfg.attention, p.tone_bytes(cfg.attention)) == p.TONE_SOUNDED
