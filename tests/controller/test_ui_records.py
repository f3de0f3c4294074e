"""The dictionary and audit log screens and the installable app's files (issue 14), over the real
app (no broker): the ward's dictionary listed, searched, edited through the new PATCH (the role
rules of the API: an operator reads only), the audit log in words with its filters and pages,
versioned static URLs with a year-long Cache-Control, the manifest and a service worker that
caches only the shell."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.ui.assets import SHELL, asset, digests
from devices.broker import free_port
from tests.conftest import make_settings, running_controller
from tests.controller.test_ui_relay import client, login

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def ward(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, admin):
        for org, parent in (("hn", None), ("w1", "hn"), ("w2", "hn")):
            r = await admin.post(
                "/api/org-units", json={"id": org, "name": f"Phường {org}", "parent_id": parent}
            )
            assert r.status_code == 201, r.text
        yield app, admin


async def test_dictionary_screen_and_edit(ward: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = ward
    ed = await login(app, admin, "bt1", "editor", "w1")
    op = await login(app, admin, "vh1", "operator", "w1")
    ed2 = await login(app, admin, "bt2", "editor", "w2")
    r = await ed.post(
        "/api/speech/dictionary", json={"term": "Kẻ Sặt", "spoken": "kẻ sặt", "note": "tên thôn"}
    )
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    r = await admin.post(
        "/api/speech/dictionary", json={"org_unit_id": "hn", "term": "UBND", "spoken": "ủy ban"}
    )
    assert r.status_code == 201, r.text
    page = (await ed.get("/dictionary")).text
    assert (
        "Kẻ Sặt" in page and "kẻ sặt" in page and "UBND" in page and "Phường hn" in page
    )  # the province's too
    assert page.count('class="sec dedit"') == 1  # the ward's entry only: the province's is not the editor's
    assert "Thêm mục" in page and "Dictionary" not in page
    found = (await ed.get("/dictionary", params={"q": "sặt"})).text
    assert "Kẻ Sặt" in found and "UBND" not in found
    assert "Không có mục nào khớp." in (await ed.get("/dictionary", params={"q": "zzz"})).text
    # the new PATCH: a new spoken form (the term stays); bad input refused clearly, nothing changed
    r = await ed.patch(f"/api/speech/dictionary/{eid}", json={"spoken": "kẻ sặc"})
    assert r.status_code == 200 and r.json()["spoken"] == "kẻ sặc" and r.json()["note"] == "tên thôn", r.text
    for bad in ({}, {"spoken": "  "}, {"spoken": "x", "term": "y"}, {"spoken": 5}):
        r = await ed.patch(f"/api/speech/dictionary/{eid}", json=bad)
        assert r.status_code == 422 and r.json()["code"] == "invalid", (bad, r.text)
    assert (
        await ed2.patch(f"/api/speech/dictionary/{eid}", json={"spoken": "x"})
    ).status_code == 404  # ward 2
    r = await op.patch(f"/api/speech/dictionary/{eid}", json={"spoken": "x"})
    assert r.status_code == 403 and r.json()["code"] == "role_forbidden"
    listed = {e["term"]: e["spoken"] for e in (await ed.get("/api/speech/dictionary")).json()}
    assert listed == {"UBND": "ủy ban", "Kẻ Sặt": "kẻ sặc"}
    said = (await ed.post("/api/speech/normalize", json={"text": "Kẻ Sặt"})).json()
    assert said["text"].startswith("kẻ sặc")  # the speech reads it the new way
    r = await ed.post("/api/speech/dictionary", json={"term": "kẻ sặt", "spoken": "a"})
    assert r.status_code == 409 and r.json()["code"] == "dictionary_dup"
    view = (await op.get("/dictionary")).text  # an operator reads the ward's dictionary, changes nothing
    assert "Kẻ Sặt" in view and 'class="sec dedit"' not in view and 'id="daddf"' not in view
    assert "Chỉ cán bộ biên tập, phê duyệt hoặc quản trị được sửa từ điển." in view
    ed.cookies.set("lang", "en")
    en = (await ed.get("/dictionary")).text
    assert (
        "Pronunciation dictionary" in en and "Add an entry" in en and "Từ điển" not in en.split("<main>")[1]
    )


async def test_audit_screen_words_filters_pages(ward: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = ward
    c = client(app)
    r = await c.post("/api/login", json={"username": "admin", "password": "test-password-1"})
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    ed = await login(app, admin, "bt1", "editor", "w1")
    wa = await login(app, admin, "qt1", "admin", "w1")  # a ward admin: their ward's entries only
    assert (
        await c.post("/api/login", json={"username": "bt1", "password": "wrong-wrong-1"})
    ).status_code == 401
    for i in range(25):  # 50 entries: the named one and the request
        assert (
            await ed.post("/api/speech/dictionary", json={"term": f"Thôn {i}", "spoken": f"thôn {i}"})
        ).status_code == 201
    page = (await c.get("/audit")).text
    rows = re.findall(r'<li class="au ([a-z_]+)"><b>([^<]+)</b>', page)
    assert len(rows) == 50 and 'id="aunext"' in page and 'id="auprev"' not in page  # 50 a page
    assert set(rows) == {("dictionary", "Từ điển phát âm")}
    older = (await c.get("/audit", params={"page": 2})).text
    assert 'id="auprev"' in older and "Tạo tài khoản" in older and "Đăng nhập sai mật khẩu" in older
    assert "qua trang đăng nhập từ 127.0.0.1" in older  # the failed login, where from, in words
    shown = " ".join(
        re.sub(r"<[^>]+>", " ", x.split('id="aulog"')[1].split("</ul>")[0]) for x in (page, older)
    )
    assert "POST" not in shown and "/api/" not in shown and "_" not in shown  # no raw actions shown
    only = (await c.get("/audit", params={"kind": "login_failed"})).text
    assert re.findall(r'<li class="au ([a-z_]+)">', only) == ["login_failed"] and "bt1" in only
    by = (await c.get("/audit", params={"who": "qt1"})).text
    assert set(re.findall(r"<time>[^<]+</time> · (\w+)", by)) == {"qt1"}
    none = (await c.get("/audit", params={"since": "2020-01-01", "until": "2020-01-31"})).text
    assert "Không có thao tác nào khớp." in none
    bad = (await c.get("/audit", params={"since": "2026-12-10", "until": "2026-12-01", "kind": "x"})).text
    assert "Ngày kết thúc trước ngày bắt đầu" in bad and "Không có thao tác này" in bad
    mine = (await wa.get("/audit", params={"kind": "user_add"})).text
    assert "Không có thao tác nào khớp." in mine  # the accounts were made by the top admin, not in w1
    assert "Chỉ quản trị viên xem được nhật ký." in (await ed.get("/audit")).text
    r = await admin.get("/api/audit", params={"username": "bt1", "action": "login_failed"})
    assert [e["action"] for e in r.json()] == ["login_failed"]
    r = await admin.get("/api/audit", params={"from": "2026-12-10", "to": "2026-12-01"})
    assert r.status_code == 422 and "before its start" in r.json()["detail"]
    assert (await admin.get("/api/audit", params={"to": "0"})).status_code == 422  # not 1970-01-01
    c.cookies.set("lang", "en")
    en = (await c.get("/audit", params={"page": 2})).text
    assert "Created an account" in en and "Failed login" in en and "Tạo tài khoản" not in en
    await c.aclose()


async def test_versioned_shell_manifest_and_worker(ward: tuple[Any, httpx.AsyncClient]) -> None:
    app, _ = ward
    c = client(app)
    page = (await c.get("/login")).text
    assert asset("app.js") in page and asset("app.css") in page and 'rel="manifest"' in page
    for name in SHELL:
        r = await c.get(asset(name))
        assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=31536000, immutable", (
            name
        )
    old = await c.get("/v/000000000000/app.js")  # an old page after an upgrade: today's file, not kept
    assert old.status_code == 200 and old.headers["cache-control"] == "no-cache"
    assert old.content == (await c.get(asset("app.js"))).content
    for bad in ("/v/x/../../settings.py", f"/v/{digests()['app.js']}/sw.py", "/v/x/app.py"):
        assert (await c.get(bad)).status_code == 404, bad
    m = await c.get("/manifest.webmanifest")
    assert m.headers["content-type"].startswith("application/manifest+json")
    man = m.json()
    assert man["short_name"] == "Loa phường" and man["lang"] == "vi" and man["display"] == "standalone"
    assert man["theme_color"] == "#8c1c13" and any(i["purpose"] == "maskable" for i in man["icons"])
    for icon in man["icons"]:
        assert (await c.get(icon["src"])).status_code == 200
    assert (await c.get("/favicon.ico")).status_code == 200
    sw = await c.get("/sw.js")
    assert sw.headers["cache-control"] == "no-cache" and "javascript" in sw.headers["content-type"]
    cached = re.search(r"const SHELL = (\[.*?\]);", sw.text)
    assert cached is not None and "/api/" not in cached.group(1)
    assert sorted(cached.group(1).strip("[]").replace('"', "").split(", ")) == sorted(asset(n) for n in SHELL)
    await c.aclose()


def test_every_audited_action_has_words(tmp_path: Path) -> None:
    """Each state-changing API route (as the audit middleware records it) and each named action
    written by the code has a kind with Vietnamese words: nothing shows as 'Thao tác khác'."""
    from controller.app import create_app
    from controller.ui.audit_names import KINDS, kind_of

    app = create_app(make_settings(tmp_path, free_port()))
    writes = [
        f"{m.upper()} {re.sub(r'{[^}]+}', '7', path)}"
        for path, ops in app.openapi()["paths"].items()
        if path.startswith("/api/")
        for m in ops
        if m in ("post", "patch", "put", "delete")
    ]
    assert len(writes) > 40
    root = Path(__file__).resolve().parents[2] / "controller"
    named = set()
    for f in root.rglob("*.py"):
        text = f.read_text()
        named |= set(re.findall(r"\b(?:audit|record)\(s, [^,]+, \"([a-z_]+)\"", text))
        # the writer's entries (live sessions, relays)
        named |= set(re.findall(r"\b(?:record_op\([^,]+, |self\._audit\(s, )\"([a-z_]+)\"", text))
        named |= {f"bulletin_{x}" for x in ("approved", "rejected")} if "bulletin_{to}" in text else set()
        for pair in re.findall(r'action = "([a-z_]+)" if how == "password change" else "([a-z_]+)"', text):
            named |= set(pair)  # the failed password checks
    named |= {"emergency_bypass", "emergency_bypass_refused", "schedule_fired"}
    assert {
        "login",
        "login_failed",
        "dictionary_add",
        "bulletin_delete",
        "node_retire",
        "bulletin_approved",
        "broadcast_air",
        "live_start",
        "live_end",
        "relay_start",
        "relay_end",
    } <= named
    unknown = [a for a in [*writes, *named] if kind_of(a) is None]
    assert not unknown, unknown
    assert all(v[1] != v[2] for v in KINDS.values())  # a Vietnamese name each, not the English one
