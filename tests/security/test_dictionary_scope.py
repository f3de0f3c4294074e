"""Issue 11 item 4, performed for real: a ward-A editor's pronunciation entry against the
controller over real HTTP, Mosquitto on the configuration ``loaphuong mqtt-config`` generated,
the units logged in with their own accounts.

- Ward B's approved bulletin is untouched: same audio (sha256), same spoken text, still approved
  and still airs.
- Ward A's approved bulletin that the entry changes is read again and goes back to the approval
  queue (reason, audit): POST /api/broadcasts for it is 409, a schedule set for it fails at fire
  time, nothing reaches a unit; once re-approved it airs the new, approved audio.
- Editors edit only their own org unit's dictionary (not another ward's, not the province's);
  province entries reach every ward, a ward's entry overrides them for that ward only.
- Migration 0009 applies on SQLite and PostgreSQL and binds bulletins approved before it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import text
from sqlmodel import Session, select

from controller.accounts.models import OrgUnit
from controller.airing.models import Delivery
from controller.bulletins.binding import audio_refusal
from controller.bulletins.dictionary import chain, load_dictionary
from controller.bulletins.models import Bulletin, PronunciationEntry
from controller.core.db import Database, alembic_config, make_engine
from devices.broker import free_port
from scheduler import TIMEZONE
from tests.conftest import ADMIN, make_settings
from tests.e2e.helpers import wait_for
from tests.e2e.serve import serving
from tests.security.ward import TEXT, binding_world, ok, on_air

pytestmark = [pytest.mark.timeout(150)]

ATTACK = {"term": "tiêm phòng", "spoken": "hủy bỏ mọi buổi tiêm"}


@pytest.mark.broker
async def test_a_ward_a_entry_never_changes_ward_b_and_ward_a_must_approve_again(tmp_path: Path) -> None:
    async with on_air(tmp_path, binding_world, lead_s=1) as (admin, w, units, app):
        a, b = w.approved["wa"], w.approved["wb"]
        b_before = ok(await admin.get(f"/api/bulletins/{b}"), 200)
        a_before = ok(await admin.get(f"/api/bulletins/{a}"), 200)
        at = (datetime.now(tz=TIMEZONE) + timedelta(seconds=12)).isoformat()
        sched = ok(await admin.post("/api/schedules", auth=w.auth("op_a"), json={
            "bulletin_id": a, "target": {"zones": ["za"]}, "when": {"kind": "once", "at": at}}))

        entry = ok(await admin.post("/api/speech/dictionary", json=ATTACK, auth=w.auth("ed_a")))
        assert entry["org_unit_id"] == "wa" and entry["rerendered"] == [a]

        b_after = ok(await admin.get(f"/api/bulletins/{b}"), 200)
        for k in ("audio", "spoken_text", "approval", "approved_sha256", "approved_spoken_text",
                  "dictionary_hits"):
            assert b_after[k] == b_before[k], k
        assert b_after["approved_sha256"] == b_after["audio"]["sha256"]
        assert "hủy bỏ" not in b_after["spoken_text"]
        seen_b = ok(await admin.get("/api/speech/dictionary", auth=w.auth("ed_b")), 200)
        assert [e["term"] for e in seen_b] == []
        spoken_b = ok(await admin.post("/api/speech/normalize", json={"text": "tiêm phòng"},
                                       auth=w.auth("ed_b")), 200)
        assert spoken_b["text"] == "tiêm phòng" and spoken_b["dictionary_hits"] == []

        a_after = ok(await admin.get(f"/api/bulletins/{a}"), 200)
        assert a_after["approval"] == "submitted"
        assert "hủy bỏ mọi buổi tiêm" in a_after["spoken_text"] and "tiêm phòng" in a_after["pending_reason"]
        assert a_after["audio"]["sha256"] != a_before["audio"]["sha256"]
        assert a_after["approved_sha256"] == a_before["audio"]["sha256"]  # what was approved, kept on record
        audit = ok(await admin.get("/api/audit"), 200)
        assert any(x["action"] == "bulletin_reapproval" and x["target"] == f"bulletin:{a}" for x in audit)

        r = await admin.post("/api/broadcasts", auth=w.auth("op_a"), json={"bulletin_id": a,
                                                                           "target": {"zones": ["za"]}})
        assert r.status_code == 409 and "approved" in r.json()["detail"]

        async def fired() -> bool:
            runs = (await admin.get(f"/api/schedules/{sched['id']}/runs")).json()
            return bool(runs) and runs[0]["status"] in ("failed", "aired")

        await wait_for(fired, 40, "the schedule's slot to fire")
        run = (await admin.get(f"/api/schedules/{sched['id']}/runs")).json()[0]
        assert run["status"] == "failed" and run["broadcast_ids"] == [] and "approved" in run["reason"]
        assert units["za-1"].acks == [] and units["zb-1"].acks == []
        with Session(app.state.services.db.engine) as s:
            assert s.exec(select(Delivery)).all() == []

        # ward B still airs its untouched bulletin; ward A airs once its approver approved the new audio
        r = ok(await admin.post("/api/broadcasts", auth=w.auth("op_b"), json={"bulletin_id": b,
                                                                              "target": {"all": True}}))
        await wait_for(lambda: r["id"] in units["zb-1"].played, 30, "ward B's unit playing its bulletin")
        assert hashlib.sha256(units["zb-1"].audio[r["id"]]).hexdigest() == b_before["audio"]["sha256"]
        ok(await admin.post(f"/api/bulletins/{a}/approve", auth=w.auth("ap_a"),
                            json={"audio_sha256": a_after["audio"]["sha256"]}), 200)
        r = ok(await admin.post("/api/broadcasts", auth=w.auth("op_a"), json={"bulletin_id": a,
                                                                              "target": {"all": True}}))
        await wait_for(lambda: r["id"] in units["za-1"].played, 30, "ward A's unit playing its new audio")
        assert hashlib.sha256(units["za-1"].audio[r["id"]]).hexdigest() == a_after["audio"]["sha256"]
        assert all(bc != r["id"] for bc, _ in units["zb-1"].acks)


async def test_editors_edit_only_their_own_org_units_dictionary(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, free_port())  # no broker: nothing airs here
    async with serving(settings) as (_, addr):
        async with httpx.AsyncClient(base_url=f"http://{addr}", timeout=60) as api:
            w = await binding_world(api, auth=ADMIN)
            province = ok(await api.post("/api/speech/dictionary", auth=w.auth("ed_hn"),
                                         json={"term": "UBND", "spoken": "ủy ban nhân dân"}))
            ward_b = ok(await api.post("/api/speech/dictionary", auth=w.auth("ed_b"),
                                       json={"term": "Kẻ Sặt", "spoken": "Kẻ Sặt"}))
            of_b = {"org_unit_id": "wb"}
            before = ok(await api.get("/api/speech/dictionary", auth=ADMIN, params=of_b), 200)
            ed_a = w.auth("ed_a")
            for body, code in (({"org_unit_id": "wb"}, 404), ({"org_unit_id": "hn"}, 403)):
                r = await api.post("/api/speech/dictionary", auth=ed_a, json=ATTACK | body)
                assert r.status_code == code, r.text
            assert (await api.delete(f"/api/speech/dictionary/{ward_b['id']}", auth=ed_a)).status_code == 404
            r = await api.delete(f"/api/speech/dictionary/{province['id']}", auth=ed_a)
            assert r.status_code == 403 and "own org unit" in r.json()["detail"]
            r = await api.post("/api/speech/dictionary", auth=w.auth("op_a"), json=ATTACK)
            assert r.status_code == 403
            r = await api.post("/api/speech/dictionary", auth=w.auth("adm_a"),
                               json=ATTACK | {"org_unit_id": "hn"})
            assert r.status_code == 403  # a ward admin edits its subtree, never the province above it
            assert ok(await api.get("/api/speech/dictionary", auth=ADMIN, params=of_b), 200) == before
            r = await api.get("/api/speech/dictionary", auth=ed_a, params=of_b)
            assert r.status_code == 404  # another ward's dictionary is not even listed

            # inheritance: the province's entry reaches both wards; ward A overrides it for itself only
            ok(await api.post("/api/speech/dictionary", auth=ed_a,
                              json={"term": "UBND", "spoken": "ủy ban phường"}))
            said = {u: ok(await api.post("/api/speech/normalize", auth=w.auth(u), json={"text": "UBND họp"}),
                          200) for u in ("ed_a", "ed_b", "ed_hn")}
            assert said["ed_a"]["text"] == "ủy ban phường họp"
            assert said["ed_b"]["text"] == said["ed_hn"]["text"] == "ủy ban nhân dân họp"
            mine = ok(await api.get("/api/speech/dictionary", auth=ed_a), 200)
            assert [(e["org_unit_id"], e["term"], e["overridden"]) for e in mine] == [
                ("hn", "UBND", True), ("wa", "UBND", False)]
            # the legit editor's own entry works and is theirs to delete
            assert (await api.delete(f"/api/speech/dictionary/{mine[1]['id']}", auth=ed_a)).status_code == 204
            b = ok(await api.post("/api/bulletins", auth=ed_a, json={"text": TEXT.format(ward="UBND")}))
            assert "ủy ban nhân dân" in b["spoken_text"] and b["approval"] == "draft"


LEGACY = (  # rows as revision 0008 stored them: an approved bulletin and a dictionary entry
    "INSERT INTO audioasset (sha256, size, duration_ms, codec, sample_rate, bitrate_kbps, engine, voice, "
    "path, created_at) VALUES (:h, 1, 1, 'mp3', 24000, 32, 'e', 'vi', 'p', 0)",
    "INSERT INTO bulletin (id, title, text, voice, priority, audio_sha256, created_by, created_at, warnings, "
    "approval, decided_by, decision_note) VALUES (1, 't', 'x', 'vi', 'normal', :h, 'a', 0, '[]', 'approved', "
    "'', '')",
    "INSERT INTO bulletinspeech (bulletin_id, spoken_text, requested_engine, engine, voice, dictionary_hits) "
    "VALUES (1, 'ích', 'e', 'e', 'vi', '[]')",
    "INSERT INTO pronunciationentry (term, term_key, spoken, note, created_by, created_at) "
    "VALUES ('TDP', 'tdp', 'tổ dân phố', '', 'a', 0)",
)


def _migrate_legacy_then_head(url: str) -> None:
    """At 0008: legacy rows; then upgrade to head: bound, top-level, one term per org unit."""
    engine = make_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
    with engine.begin() as conn:
        for sql in LEGACY:
            conn.execute(text(sql), {"h": "a" * 64})
    engine.dispose()
    db = Database(url)
    db.migrate()
    db.migrate()  # idempotent
    with db.engine.connect() as conn:
        row = conn.execute(text("SELECT approved_sha256, approved_spoken_text, pending_reason FROM bulletin"))
        assert tuple(row.one()) == ("a" * 64, "ích", "")
        entry = conn.execute(text("SELECT org_unit_id, term_key FROM pronunciationentry")).one()
        assert tuple(entry) == (None, "tdp")
        conn.execute(text("INSERT INTO orgunit (id, name) VALUES ('wa', 'A')"))
        conn.execute(text("INSERT INTO pronunciationentry (org_unit_id, term, term_key, spoken, note, "
                          "created_by, created_at) VALUES ('wa', 'TDP', 'tdp', 'tổ', '', 'a', 0)"))
        conn.commit()
    db.dispose()


def test_migration_0009_on_sqlite(tmp_path: Path) -> None:
    _migrate_legacy_then_head(f"sqlite:///{tmp_path / 'lp.db'}")


@pytest.mark.postgres
def test_migration_0009_on_postgresql(pg_url: str) -> None:
    _migrate_legacy_then_head(pg_url)


# --------------------------------------------------------------------------- broker-free units


def test_the_dictionary_chain_inherits_downwards_only_and_survives_a_loop(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'lp.db'}")
    db.migrate()
    with db.session() as s:
        s.add_all([OrgUnit(id="hn", name="HN"), OrgUnit(id="wa", name="A", parent_id="hn"),
                   OrgUnit(id="wb", name="B", parent_id="hn")])
        s.flush()
        s.add_all([PronunciationEntry(org_unit_id=org, term=t, term_key=t.casefold(), spoken=sp)
                   for org, t, sp in ((None, "TDP", "tổ dân phố"), ("hn", "UBND", "ủy ban nhân dân"),
                                      ("wa", "UBND", "ủy ban phường"), ("wa", "tiêm phòng", "hủy"))])
        s.commit()
        assert chain(s, "wa") == [None, "hn", "wa"]
        assert load_dictionary(s, "wa") == {"TDP": "tổ dân phố", "UBND": "ủy ban phường", "tiêm phòng": "hủy"}
        assert load_dictionary(s, "wb") == {"TDP": "tổ dân phố", "UBND": "ủy ban nhân dân"}
        assert load_dictionary(s, None) == {"TDP": "tổ dân phố"}
        hn = s.get(OrgUnit, "hn")
        assert hn is not None
        hn.parent_id = "wa"  # a loop in the data: the chain still ends
        s.add(hn)
        s.commit()
        assert chain(s, "wb")[0] is None and len(chain(s, "wb")) <= 4


def test_only_the_approved_audio_may_air() -> None:
    b = Bulletin(id=7, title="t", text="x", voice="vi", audio_sha256="a" * 64, approval="approved")
    assert audio_refusal(b, "a" * 64) is not None  # approved, but bound to nothing: refused
    b.approved_sha256 = "a" * 64
    assert audio_refusal(b, "a" * 64) is None
    assert "not the audio approved" in (audio_refusal(b, "b" * 64) or "")
    assert audio_refusal(b, None) is not None
    b.approval = "submitted"
    assert audio_refusal(b, "b" * 64) is None  # not approved: controller/airing/rules.py decides
