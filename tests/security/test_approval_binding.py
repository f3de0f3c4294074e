"""Issue 11 items 4, 14 and 22 (approval half), performed for real over HTTP with Mosquitto on
the configuration ``loaphuong mqtt-config`` generated and the units logged in with their own
accounts.

- 22: approving or rejecting a draft that was never submitted is 409 and changes nothing; an
  approval names the audio the approver heard (a changed audio is 409); the approval page offers
  decisions on pending bulletins only and shows the spoken text.
- 4: approved, then the audio changed under it (a dictionary edit re-renders it; re-approved;
  a broadcast set earlier still holds the old audio): at air time it is refused with the reason
  on the broadcast and nothing reaches a unit; an approved row whose audio was swapped in the
  database cannot be aired at all (409).
- 14: a ward-B user fetching ward-A audio by its sha256 gets 404 (as for audio that does not
  exist); previews stay audible to their maker and their ward.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, col, select

from controller.airing.models import Broadcast, Delivery
from controller.bulletins.models import Bulletin
from scheduler import TIMEZONE
from tests.e2e.helpers import wait_for
from tests.security.ward import binding_world, ok, on_air

pytestmark = [pytest.mark.broker, pytest.mark.timeout(150)]


async def test_only_pending_bulletins_are_decided_and_audio_is_heard_only_in_its_ward(tmp_path: Path) -> None:
    async with on_air(tmp_path, binding_world, units=False) as (api, w, _, app):
        ed, ap = w.auth("ed_a"), w.auth("ap_a")
        draft = ok(await api.post("/api/bulletins", auth=ed, json={"text": "Bản nháp chưa gửi duyệt."}))
        for what in ("approve", "reject"):
            r = await api.post(f"/api/bulletins/{draft['id']}/{what}", auth=ap, json={"note": ""})
            assert r.status_code == 409 and "never submitted" in r.json()["detail"]
        after = ok(await api.get(f"/api/bulletins/{draft['id']}", auth=ed), 200)
        assert after["approval"] == "draft" and after["decided_by"] == "" and after["approved_sha256"] is None

        # the approval page: decisions offered on pending bulletins only, with the spoken text
        sub = ok(await api.post("/api/bulletins", auth=ed, json={"text": "Họp tổ dân phố lúc 19h."}))
        ok(await api.post(f"/api/bulletins/{sub['id']}/submit", auth=ed), 200)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as phone:  # the approver's browser
            login = ok(await phone.post("/api/login", json={"username": ap[0], "password": ap[1]}), 200)
            csrf, new = login["csrf_token"], "Chosen-pass-4812x"  # pages ask for a new password first
            ok(await phone.post("/api/me/password", json={"current": ap[1], "new": new},
                                headers={"X-CSRF-Token": csrf}), 200)
            w.passwords["ap_a"] = new
            ap = w.auth("ap_a")
            page = await phone.get("/bulletins")
        assert page.status_code == 200
        decisions = set(re.findall(r"decide\((\d+), 'approve'", page.text))
        assert decisions == {str(sub["id"])}
        assert sub["spoken_text"] in page.text

        r = await api.post(f"/api/bulletins/{sub['id']}/approve", auth=ap, json={"audio_sha256": "0" * 64})
        assert r.status_code == 409 and "changed" in r.json()["detail"]
        assert ok(await api.get(f"/api/bulletins/{sub['id']}", auth=ed), 200)["approval"] == "submitted"
        done = ok(await api.post(f"/api/bulletins/{sub['id']}/approve", auth=ap,
                                 json={"audio_sha256": sub["audio"]["sha256"]}), 200)
        assert done["approved_sha256"] == sub["audio"]["sha256"]
        assert done["approved_spoken_text"] == sub["spoken_text"]
        r = await api.post(f"/api/bulletins/{sub['id']}/approve", auth=ap)
        assert r.status_code == 409 and "already approved" in r.json()["detail"]

        # editing an approved bulletin changes its audio: it needs approval again, and cannot air
        for who, code in (("ed_b", 403), ("op_a", 403)):
            r = await api.patch(f"/api/bulletins/{sub['id']}", auth=w.auth(who), json={"text": "Hủy họp."})
            assert r.status_code == code, r.text
        r = await api.patch(f"/api/bulletins/{sub['id']}", auth=ed, json={"text": "!!!"})
        assert r.status_code == 422
        assert ok(await api.get(f"/api/bulletins/{sub['id']}"), 200) == done  # refused edits change nothing
        edited = ok(await api.patch(f"/api/bulletins/{sub['id']}", auth=ed, json={"text": "Họp lúc 20h."}),
                    200)
        assert edited["approval"] == "submitted" and "edited by ed_a" in edited["pending_reason"]
        assert edited["audio"]["sha256"] != done["audio"]["sha256"]
        assert edited["approved_sha256"] == done["audio"]["sha256"]  # what was approved, on record
        r = await api.post("/api/broadcasts", auth=w.auth("op_a"), json={"bulletin_id": sub["id"],
                                                                         "target": {"zones": ["za"]}})
        assert r.status_code == 409
        with Session(app.state.services.db.engine) as s:
            assert s.exec(select(Broadcast)).all() == []

        a = ok(await api.get(f"/api/bulletins/{w.approved['wa']}"), 200)
        sha = a["audio"]["sha256"]
        url = f"/api/speech/audio/{sha}"
        missing = await api.get("/api/speech/audio/" + "0" * 64, auth=w.auth("ed_b"))
        for user in ("ed_b", "ap_b", "op_b"):
            r = await api.get(url, auth=w.auth(user))
            assert r.status_code == 404 and r.json() == missing.json()  # does not confirm it exists
        got = await api.get(url, auth=w.auth("op_a"))
        assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sha
        assert (await api.get(url)).status_code == 200  # the province admin sees every ward

        pv = ok(await api.post("/api/speech/preview", auth=w.auth("ed_a"),
                               json={"text": "Bản nghe thử riêng của phường A."}), 200)
        assert (await api.get(pv["audio_url"], auth=w.auth("ed_a"))).status_code == 200
        assert (await api.get(pv["audio_url"], auth=w.auth("ap_a"))).status_code == 200  # same ward
        r = await api.get(pv["audio_url"], auth=w.auth("ed_b"))
        assert r.status_code == 404 and r.json() == missing.json()
        # ward B previewing the same text becomes a maker too, without taking it from ward A
        ok(await api.post("/api/speech/preview", auth=w.auth("ed_b"),
                          json={"text": "Bản nghe thử riêng của phường A."}), 200)
        assert (await api.get(pv["audio_url"], auth=w.auth("ed_b"))).status_code == 200
        assert (await api.get(pv["audio_url"], auth=w.auth("ed_a"))).status_code == 200


def _set_audio(app: FastAPI, bulletin_id: int, *, audio: str, approved: str | None = None) -> None:
    """Change the bulletin's row only (as another controller or writer on the database would)."""
    with Session(app.state.services.db.engine) as s:
        b = s.get(Bulletin, bulletin_id)
        assert b is not None
        b.audio_sha256 = audio
        if approved is not None:
            b.approved_sha256 = approved
        s.add(b)
        s.commit()


def _broadcast(app: FastAPI, bid: str) -> Broadcast:
    with Session(app.state.services.db.engine) as s:
        row = s.get(Broadcast, bid)
        assert row is not None
        return row


def _deliveries(app: FastAPI) -> int:
    """Deliveries that went out to a unit."""
    with Session(app.state.services.db.engine) as s:
        gone = ("sent", "receiving", "verified", "playing", "played", "offline")
        return len(s.exec(select(Delivery).where(col(Delivery.state).in_(gone))).all())


async def test_audio_changed_after_approval_never_airs(tmp_path: Path) -> None:
    async with on_air(tmp_path, binding_world, lead_s=3) as (api, w, units, app):
        op, ap, a = w.auth("op_a"), w.auth("ap_a"), w.approved["wa"]
        first = ok(await api.get(f"/api/bulletins/{a}"), 200)["audio"]["sha256"]
        target = {"bulletin_id": a, "target": {"zones": ["za"]}}
        in_a_minute = (datetime.now(tz=TIMEZONE) + timedelta(seconds=60)).isoformat()
        set_earlier = ok(await api.post("/api/broadcasts", auth=op, json=target | {"air_at": in_a_minute}))

        # 1. the dictionary changes its reading: back to the queue, what was set to air it withdrawn
        entry = ok(await api.post("/api/speech/dictionary", auth=w.auth("ed_a"),
                                  json={"term": "nhà văn hóa", "spoken": "sân vận động"}))
        assert entry["rerendered"] == [a]
        now = ok(await api.get(f"/api/bulletins/{a}"), 200)
        second = now["audio"]["sha256"]
        assert now["approval"] == "submitted" and second != first and now["approved_sha256"] == first
        assert _broadcast(app, set_earlier["id"]).status == "cancelled"
        ok(await api.post(f"/api/bulletins/{a}/approve", auth=ap, json={"audio_sha256": second}), 200)

        # 2. set to air the approved audio; then the row is re-bound to other audio before air time
        soon = (datetime.now(tz=TIMEZONE) + timedelta(seconds=12)).isoformat()
        later = ok(await api.post("/api/broadcasts", auth=op, json=target | {"air_at": soon}))
        _set_audio(app, a, audio=first, approved=first)
        await wait_for(lambda: _broadcast(app, later["id"]).status != "scheduled", 30, "the air time")
        refused = _broadcast(app, later["id"])
        assert refused.status == "failed" and "not the audio approved" in refused.reason
        assert refused.audio_sha256 == second and refused.sent_at is None

        # 3. an approved row whose audio is swapped underneath cannot be aired at all
        _set_audio(app, a, audio=second)
        r = await api.post("/api/broadcasts", auth=op, json=target)
        assert r.status_code == 409 and "not the audio approved" in r.json()["detail"]
        assert units["za-1"].acks == [] and units["zb-1"].acks == [] and _deliveries(app) == 0

        # the approved audio still airs, and it is exactly the approved audio that plays
        _set_audio(app, a, audio=first)
        r = ok(await api.post("/api/broadcasts", auth=op, json=target))
        await wait_for(lambda: r["id"] in units["za-1"].played, 30, "ward A's unit playing the approved one")
        assert hashlib.sha256(units["za-1"].audio[r["id"]]).hexdigest() == first
