"""Every reason a delivery can be recorded with reads as a Vietnamese sentence on a Vietnamese page
(issue 14: "delivery reasons ... English on Vietnamese screens"): the controller's own (expiry,
offline, reconcile, catch-up) and those the units report with ``failed`` (docs/protocol.md §3)."""

from __future__ import annotations

from pathlib import Path

from controller.airing.active import EXPIRY_REASON
from controller.airing.late import CATCHING_UP, TOO_LATE
from controller.airing.reconcile import PREEMPTED, RESUMES
from controller.ui.i18n import DELIVERY_REASONS, T

#: the `failed` reasons of the ack table of docs/protocol.md §3 (two are also delivery states)
UNIT_REASONS = ("expired", "checksum", "storage_full", "power_off", "preempted", "cancelled", "decode_error",
                "stopped", "too_late")
STATES = ("expired", "cancelled")  # shown through the states' own words


def test_every_delivery_reason_has_a_vietnamese_and_an_english_sentence() -> None:
    reasons = {*EXPIRY_REASON.values(), CATCHING_UP, TOO_LATE, PREEMPTED, RESUMES, "repairing",
               "node offline at send time", "node back online", *UNIT_REASONS}
    keys = {r: f"why_{r}" if f"why_{r}" in DELIVERY_REASONS else r for r in reasons}  # (a word used twice)
    missing = sorted(r for r, k in keys.items() if k not in DELIVERY_REASONS and r not in STATES)
    assert not missing, f"reasons the delivery view would show untranslated: {missing}"
    for r, k in keys.items():
        vi, en = T["vi"][k], T["en"][k]
        assert vi and en and vi != en, r  # a Vietnamese sentence of its own, not the English key
    assert "{n}" in T["vi"]["asked_again_n"] and "lần" in T["vi"]["asked_again_n"]


def test_the_protocol_doc_lists_the_same_unit_reasons() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    row = next(line for line in doc.splitlines() if line.startswith("| `failed` | the node gave up"))
    assert all(f"`{r}`" in row for r in UNIT_REASONS), row
