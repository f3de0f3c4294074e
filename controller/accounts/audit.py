"""The audit log: the one port every capability writes its entries through.

``audit`` writes an entry and commits (a request's own action); ``record`` adds one to the
caller's transaction (it commits with what it describes: a broadcast, a schedule's run);
``record_op`` is the same as a :class:`controller.core.writer.DbWriter` operation (live sessions
and relays, written off the audio path); ``record_many`` adds many in one INSERT (a burst of
schedule slots). ``details`` makes the JSON detail of an airing event (bulletin title, zones,
units, outcome) that the log screen puts in words (controller/ui/audit_events.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from controller.accounts.models import AuditEntry
from devices.protocol import now_ms

logger = logging.getLogger(__name__)

_TABLE = AuditEntry.__table__  # type: ignore[attr-defined]
MAX_DETAIL = 1000


# --------------------------------------------------------------------------- audit


def audit(s: Session, username: str, action: str, target: str = "", detail: str = "") -> None:
    record(s, username, action, target, detail)
    s.commit()


def record(s: Session, username: str, action: str, target: str = "", detail: str = "") -> None:
    """An entry in ``s``'s transaction (committed by the caller, with what it records)."""
    s.add(AuditEntry(username=username[:100], action=action[:64], target=target[:200],
                     detail=detail[:MAX_DETAIL]))
    logger.info("audit: %s %s %s %s", username, action, target, detail)


def record_op(username: str, action: str, target: str = "", detail: str = "") -> Callable[[Session], None]:
    """A DbWriter operation writing one entry (never blocks the caller)."""

    def op(s: Session) -> None:
        record(s, username, action, target, detail)

    return op


def record_many(s: Session, rows: list[tuple[str, str, str, str]]) -> None:
    """(username, action, target, detail) entries in one INSERT, in ``s``'s transaction."""
    if not rows:
        return
    at = now_ms()
    s.execute(insert(_TABLE), [{"at": at, "username": u[:100], "action": a[:64], "target": t[:200],
                                "detail": d[:MAX_DETAIL]} for u, a, t, d in rows])
    logger.info("audit: %d entries (%s)", len(rows), rows[0][1])


def details(**fields: Any) -> str:
    """The JSON detail of an airing event, always valid JSON within the column (long lists and
    texts are cut before encoding, not the encoded text)."""
    out = {k: v for k, v in fields.items() if v not in (None, "", [], {})}
    for k, v in out.items():
        if isinstance(v, str):
            out[k] = v[:200]
        elif isinstance(v, list):
            out[k] = [str(x)[:63] for x in v[:12]]
    text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
    while len(text) > MAX_DETAIL and any(isinstance(v, list) and v for v in out.values()):
        key = max((k for k, v in out.items() if isinstance(v, list) and v), key=lambda k: len(out[k]))
        out[key] = out[key][:-1]
        text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
    return text[:MAX_DETAIL]


def where(target: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``details`` fields of a target as requested ({all, zones, nodes})."""
    t = target or {}
    return {"all": bool(t.get("all") or t.get("all_nodes")), "zones": list(t.get("zones") or []),
            "nodes": list(t.get("nodes") or [])}
