"""A schedule run's reason reaches the schedules page as a code and its numbers, never as English.

The reasons are produced by the code that writes them (the scheduler's verdicts and late notes,
the airing rules), so a changed wording that no pattern knows any more fails here; and every
code has a Vietnamese and an English sentence. After: the API still returns ``reason`` as it
was, beside ``reason_code`` and ``reason_args``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlmodel import Session

from controller.airing.rules import airing_refusal
from controller.api.run_reasons import PATTERNS, run_reason
from controller.bulletins.models import Bulletin
from controller.ui.i18n_phone import PHONE
from devices.broker import free_port
from devices.protocol import now_ms
from scheduler.clock import local
from scheduler.firing import _late_note, slot_verdict
from scheduler.models import Schedule, ScheduleRun
from scheduler.ports import Slot
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import provision

DAY_MS = 86_400_000


def _slot(late_ms: int, relay: dict[str, Any] | None = None) -> Slot:
    t = now_ms()
    return Slot(schedule_id=1, slot_ms=t - late_ms, now_ms=t, bulletin_id=None if relay else 1, relay=relay,
                targets={"zones": ["z1"]}, priority=None, repeat=1, interval_s=0, valid_for_s=None,
                created_by="admin")


def _produced() -> dict[str, str]:
    """code → a reason as its producer writes it today."""
    t = now_ms()
    sc = Schedule(id=1, name="x", exceptions=[])
    late = slot_verdict(sc, t - 120_000, t, 30_000)[1]
    day = local(t).date().isoformat()
    skipped = slot_verdict(Schedule(id=1, name="x", exceptions=[day]), t, t, 30_000)[1]
    rejected = airing_refusal(Bulletin(id=9, text="x", approval="rejected"), None)
    draft = airing_refusal(Bulletin(id=9, text="x", approval="draft"), None)
    assert rejected and draft
    return {"missed_late": late, "exception_day": skipped, "aired_late": _late_note(_slot(4_200)),
            "relay_late": _late_note(_slot(9_000, {"url": "http://x", "duration_s": 60})),
            "rejected": rejected, "not_approved": draft}


def test_each_producers_reason_gets_its_code_and_numbers() -> None:
    got = {code: run_reason(reason) for code, reason in _produced().items()}
    assert {code: c for code, (c, _) in got.items()} == {code: code for code in got}
    assert got["missed_late"][1] == {"late": "120", "grace": "30"}
    assert got["aired_late"][1] == {"late": "4.2"} and got["relay_late"][1] == {"late": "9.0"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", got["exception_day"][1]["day"])


def test_a_partial_failure_keeps_its_cause_and_counts() -> None:
    got = run_reason("the target has no units (1 of 3 aired)")
    assert got == ("err_no_units", {"made": "1", "total": "3"})
    assert run_reason("") == (None, {})
    # what no pattern knows: "other", and nothing that would put English words into a sentence
    assert run_reason("database exploded") == ("other", {})


def test_every_code_has_a_sentence_in_both_languages_without_english_in_the_vietnamese() -> None:
    codes = [c for _, c in PATTERNS] + ["other", "partial"]
    for code in codes:
        vi, en = PHONE["runr_" + code]
        assert vi and en, code
        words = set(re.findall(r"\w+", re.sub(r"\{\w+\}", "", vi).lower()))
        assert not words & {"the", "of", "was", "s", "late", "aired", "reason"}, (code, vi)
        names = set(re.findall(r"\{(\w+)\}", vi)) | set(re.findall(r"\{(\w+)\}", en))
        groups = next((set(p.groupindex) for p, c in PATTERNS if c == code), set())
        assert names - {"reason", "made", "total"} <= groups, (code, names, groups)


async def test_the_runs_api_returns_the_code_beside_the_english_reason(tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, client):
        await provision(client, {"z1": ["n1"]})
        r = await client.post("/api/bulletins", json={"text": "Họp tổ dân phố lúc 17 giờ."})
        assert r.status_code == 201, r.text
        when = {"kind": "daily", "times": ["05:00"]}
        r = await client.post("/api/schedules", json={"bulletin_id": r.json()["id"], "target": {"all": True},
                                                      "when": when})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        reasons = _produced()
        with Session(app.state.services.db.engine) as s:
            for k, (_code, reason) in enumerate(sorted(reasons.items())):
                s.add(ScheduleRun(schedule_id=sid, slot_at=now_ms() - (k + 1) * DAY_MS, status="failed",
                                  reason=reason))
            s.commit()
        runs = (await client.get(f"/api/schedules/{sid}/runs")).json()
        assert {r["reason_code"] for r in runs} == set(reasons)
        assert all(r["reason"] == reasons[r["reason_code"]] for r in runs)  # the English is kept
        assert next(r for r in runs if r["reason_code"] == "missed_late")["reason_args"]["grace"] == "30"
