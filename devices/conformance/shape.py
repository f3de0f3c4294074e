"""Strict shape checks of the unit's JSON payloads (docs/protocol.md: "check types strictly").

The kit does not reuse the pydantic models here on purpose: they are lenient in places a
controller may be (``"70"`` would be coerced), while a unit must send exactly the types of the
contract. A spec maps a key to a kind; a kind ending in ``?`` also allows ``null``.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: key -> kind: int, num, str, bool, hex8 (8+ hex chars), list[str]; '?' = nullable; '-' prefix = optional
Spec = dict[str, str]

ENVELOPE: Spec = {"v": "int", "ts": "int"}
STATE: Spec = ENVELOPE | {"node_id": "str", "status": "str", "session": "hex8", "fw": "str", "hw": "str",
                          "proto": "int", "-reason": "str"}
HEARTBEAT: Spec = ENVELOPE | {"node_id": "str", "session": "hex8", "seq": "int", "uptime_s": "int",
                              "playing": "str"}
TELEMETRY: Spec = ENVELOPE | {
    "node_id": "str", "power": "bool", "volume": "int", "playing": "str", "rssi_dbm": "int?",
    "temp_c": "num?", "storage_free_kb": "int?", "ip": "str", "uptime_s": "int",
    "clock_offset_ms": "int?", "faults": "list[str]", "source": "str", "fw": "str", "relay": "str"}
ACK: Spec = ENVELOPE | {"node_id": "str", "bc": "str", "state": "str", "reason": "str", "have": "int?",
                        "-attention": "str"}
REPAIR: Spec = ENVELOPE | {"node_id": "str", "bc": "str", "missing": "list[int]"}
TIME: Spec = ENVELOPE | {"node_id": "str", "t0": "int"}
RESP: Spec = ENVELOPE | {"id": "str", "node_id": "str", "status": "str", "data": "dict", "error": "str"}

SOURCES = {"idle", "bulletin", "relay", "live"}
RELAYS = {"", "connecting", "playing", "interrupted", "refused"}
FAULTS = {"amplifier", "speaker_line", "storage", "power_backup"}
_HEX8 = re.compile(r"^[0-9a-f]{8,}$")


def parse(payload: bytes) -> dict[str, Any] | None:
    """The payload as a JSON object, or None (not UTF-8 JSON, or not an object)."""
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _kind_ok(kind: str, value: Any) -> bool:
    if kind.endswith("?"):
        return value is None or _kind_ok(kind[:-1], value)
    checks: dict[str, Any] = {
        "int": lambda x: isinstance(x, int) and not isinstance(x, bool),
        "num": lambda x: isinstance(x, int | float) and not isinstance(x, bool),
        "str": lambda x: isinstance(x, str),
        "bool": lambda x: isinstance(x, bool),
        "dict": lambda x: isinstance(x, dict),
        "hex8": lambda x: isinstance(x, str) and bool(_HEX8.match(x)),
        "list[str]": lambda x: isinstance(x, list) and all(isinstance(i, str) for i in x),
        "list[int]": lambda x: isinstance(x, list) and all(isinstance(i, int) and not isinstance(i, bool)
                                                           for i in x),
    }
    return bool(checks[kind](value))


def problems(obj: dict[str, Any] | None, spec: Spec, node_id: str) -> list[str]:
    """What is wrong with ``obj`` against ``spec`` (empty = conforms)."""
    if obj is None:
        return ["not a JSON object"]
    out = []
    for key, kind in spec.items():
        optional = key.startswith("-")
        key = key.lstrip("-")
        if key not in obj:
            if not optional:
                out.append(f"missing {key!r}")
            continue
        if not _kind_ok(kind, obj[key]):
            out.append(f"{key!r} is {json.dumps(obj[key])[:40]}, expected {kind}")
    if obj.get("v") != 1:
        out.append(f"'v' is {obj.get('v')!r}, expected 1")
    if "node_id" in spec and obj.get("node_id") != node_id:
        out.append(f"'node_id' is {obj.get('node_id')!r}, expected {node_id!r}")
    return out


def telemetry_problems(obj: dict[str, Any] | None, node_id: str) -> list[str]:
    out = problems(obj, TELEMETRY, node_id)
    if obj is None or out:
        return out
    if not 0 <= obj["volume"] <= 100:
        out.append(f"volume {obj['volume']} outside 0..100")
    if obj["source"] not in SOURCES:
        out.append(f"source {obj['source']!r} not one of {sorted(SOURCES)}")
    if obj["relay"] not in RELAYS:
        out.append(f"relay {obj['relay']!r} not one of {sorted(RELAYS)}")
    unknown = [f for f in obj["faults"] if f not in FAULTS]
    if unknown:
        out.append(f"unknown fault codes {unknown} (known: {sorted(FAULTS)})")
    return out
