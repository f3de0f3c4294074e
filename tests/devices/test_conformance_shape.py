"""The conformance kit's strict shape checks and its test audio, without a broker."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from devices.conformance.audio import crc_broken, sha_broken, silent_mp3
from devices.conformance.kit import ITEMS
from devices.conformance.report import Report, Result, Status, render, summary
from devices.conformance.shape import HEARTBEAT, problems, telemetry_problems
from devices.framing import ChunkError, Reassembler, chunk_audio, parse_chunk

GOOD_TEL = {"v": 1, "ts": 1, "node_id": "u1", "power": True, "volume": 70, "playing": "", "rssi_dbm": None,
            "temp_c": 41.5, "storage_free_kb": 10, "ip": "", "uptime_s": 3, "clock_offset_ms": None,
            "faults": [], "source": "idle", "fw": "1", "relay": ""}


def test_types_are_strict_as_the_contract_says() -> None:
    assert telemetry_problems(GOOD_TEL, "u1") == []
    bad = telemetry_problems(GOOD_TEL | {"volume": "70", "power": 1, "faults": ["melted"]}, "u1")
    assert any("'volume'" in p for p in bad) and any("'power'" in p for p in bad)
    assert telemetry_problems(GOOD_TEL | {"faults": ["melted"], "source": "tv"}, "u1") == [
        "source 'tv' not one of ['bulletin', 'idle', 'live', 'relay']",
        "unknown fault codes ['melted'] (known: ['amplifier', 'power_backup', 'speaker_line', 'storage'])"]
    hb = {"v": 1, "ts": 1, "node_id": "u2", "session": "ab12", "seq": True, "uptime_s": 0, "playing": ""}
    assert problems(hb, HEARTBEAT, "u1") == [
        "'session' is \"ab12\", expected hex8", "'seq' is true, expected int",
        "'node_id' is 'u2', expected 'u1'"]
    assert problems(None, HEARTBEAT, "u1") == ["not a JSON object"]


def test_the_test_audio_and_its_corruptions() -> None:
    audio, ms = silent_mp3(2000, salt=1)
    assert audio[:2] == b"\xff\xfb" and len(audio) % 104 == 0 and 1990 <= ms <= 2100
    info, frames = chunk_audio(audio, duration_ms=ms, chunk_size=2048)
    with pytest.raises(ChunkError, match="CRC"):  # a flipped byte under an unchanged CRC
        parse_chunk(crc_broken(frames[1]))
    bad = sha_broken(frames[1])
    assert parse_chunk(bad).index == 1  # framing and CRC fine: only the file's SHA-256 can tell
    r = Reassembler(info)
    for f in [frames[0], bad, *frames[2:]]:
        r.add(parse_chunk(f))
    assert hashlib.sha256(b"".join(parse_chunk(f).data for f in frames)).hexdigest() == info.sha256
    with pytest.raises(ChunkError):  # the wrong file fails its SHA-256
        r.assemble()


def test_report_counts_and_rendering() -> None:
    rep = Report(unit="u1", broker="mqtt://x:1", prefix="lp", started_ms=0)
    rep.results = [Result("a", "§1 x", "t").passed("fine"), Result("b", "§2 y", "t").not_tested("why")]
    assert rep.ok and rep.counts() == {"PASS": 1, "FAIL": 0, "NOT TESTED": 1}
    rep.results.append(Result("c", "§3 z", "t").failed("broken"))
    assert not rep.ok and rep.to_json()["items"][2]["status"] == "FAIL"
    assert render(rep.results[2]).splitlines() == [
        "FAIL       c                      §3 z  (0.0 s)", "    broken"]
    assert summary(rep) == "u1: 1 PASS, 1 FAIL, 1 NOT TESTED -> does NOT conform"
    assert Status.NOT_TESTED.value == "NOT TESTED"


def protocol_headings() -> dict[str, list[str]]:
    """docs/protocol.md's headings by chapter: {"3": ["Audio delivery", "manifest (retained)", ...]}."""
    chapters: dict[str, list[str]] = {}
    chapter = ""
    for line in (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text().splitlines():
        m = re.match(r"^## (\d+[a-z]?)\. (.+)$", line)
        if m:
            chapter = m[1]
            chapters[chapter] = [m[2]]
        elif line.startswith("### ") and chapter:
            chapters[chapter].append(line[4:])
    return chapters


def test_every_item_names_a_section_of_the_protocol() -> None:
    chapters = protocol_headings()
    for name, section, *_ in ITEMS:
        for ref in section.split(", §"):
            m = re.match(r"^§?(\d+[a-z]?)\s*(.*)$", ref)
            assert m and m[1] in chapters, f"{name}: {section!r} names no chapter of docs/protocol.md"
            bare = re.sub(r"\s*\([^)]*\)", "", m[2])  # "Commands (stop, power)": the aspect tested
            for part in filter(None, (p.strip() for p in bare.split(", "))):
                assert any(h.startswith(part) for h in chapters[m[1]]), \
                    f"{name}: {part!r} is not a heading of §{m[1]} in docs/protocol.md"
    named = {re.match(r"^§(\d+[a-z]?)", s)[1] for _n, s, *_ in ITEMS}  # type: ignore[index]
    # §4 (the controller's delivery states), §5 (QoS choices) and §7 (the serial line, which the kit
    # drives through the gateway's child units) are not items of their own
    assert {"1", "2", "3", "6", "6a"} <= named, named
