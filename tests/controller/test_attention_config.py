"""Every unit's retained config carries the attention tone (controller/fleet/attention.py), made
once and kept in the data directory; broker-free on a FakeUnitBus."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from controller.fleet.attention import TONE_FILE, attention_tone
from controller.fleet.presence import Presence
from devices import protocol as p
from tests.fakes import FakeUnitBus


class _NoWriter:
    def submit(self, op: object) -> None:
        pass

    def submit_row(self, apply: object, row: object) -> None:
        pass


async def test_configs_carry_the_kept_tone_and_its_checksum(tmp_path: Path) -> None:
    tone = attention_tone(tmp_path)
    assert tone is not None and 0 < tone.duration_ms <= p.MAX_TONE_MS
    kept = (tmp_path / TONE_FILE).read_bytes()
    assert 0 < len(kept) <= p.MAX_TONE_BYTES and hashlib.sha256(kept).hexdigest() == tone.sha256
    assert attention_tone(tmp_path) == tone  # the kept file again, not a new one
    bus = FakeUnitBus()
    presence = Presence(bus, _NoWriter(), attention=tone)  # type: ignore[arg-type]
    presence.provision("u-1", ["z"])
    await presence.publish_configs()
    [pub] = bus.on_topic("/node/u-1/config")
    cfg = p.decode(p.NodeConfig, pub.payload)
    assert pub.retain and cfg.attention == tone and base64.b64decode(cfg.attention.data) == kept
    assert len(pub.payload) < p.MAX_JSON_PAYLOAD  # a unit accepts it
    assert p.tone_check(cfg.attention, p.tone_bytes(cfg.attention)) == p.TONE_SOUNDED
