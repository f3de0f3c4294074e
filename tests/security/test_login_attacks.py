"""Password guessing against the real controller over HTTP (issue 11 items 7, 8, 16, 17, 18, 19).

Each attack is performed against the app served by uvicorn as ``loaphuong serve`` serves it,
with Mosquitto running the generated config; clients come from different addresses of
127.0.0.0/8. Broker-free unit tests of the limiter, the verifier and the policy follow."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlmodel import Session

from controller.accounts.auth import Verifier, ensure_admin, hash_password
from controller.accounts.loginlimit import LoginLimiter
from controller.accounts.models import User
from controller.accounts.passwords import common_passwords, password_problem
from controller.core.db import Database
from controller.core.web_settings import HttpSettings, LoginSettings
from tests.conftest import ADMIN
from tests.e2e.serve import serving
from tests.security.ward import Broker, add_user, audit_rows, client, settings_for

pytestmark = pytest.mark.timeout(120)

WRONG = "not-the-password-9"


async def test_guessing_slows_the_guesser_and_locks_nobody_out(secure_broker: Broker, tmp_path: Path) -> None:
    async with serving(settings_for(secure_broker, tmp_path)) as (_, addr):
        pw = await add_user(addr, "bientap")
        async with client(addr, "127.0.0.2") as phone:  # the real user, logged in before the attack
            r = await phone.post("/api/login", json={"username": "bientap", "password": pw})
            assert r.status_code == 200, r.text
            async with client(addr, "127.0.0.3") as attacker:
                for _ in range(5):
                    r = await attacker.post("/api/login", json={"username": "bientap", "password": WRONG})
                    assert r.status_code == 401
                # now the guesser must wait: even the right password is not checked from there
                r = await attacker.post("/api/login", json={"username": "bientap", "password": pw})
                assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
                assert (await attacker.get("/api/me", auth=("bientap", pw))).status_code == 429  # Basic too
                assert (await attacker.get("/api/me", auth=("bientap", WRONG))).status_code == 429
            # the user is not locked out: the session, another address, Basic all still work
            me = await phone.get("/api/me")
            assert me.status_code == 200 and me.json()["username"] == "bientap"
            assert (await phone.get("/api/me", auth=("bientap", pw))).status_code == 200
        async with client(addr, "127.0.0.4") as elsewhere:
            r = await elsewhere.post("/api/login", json={"username": "bientap", "password": pw})
            assert r.status_code == 200, r.text
        rows = [a for a in await audit_rows(addr, "login_failed") if a["username"] == "bientap"]
        assert len(rows) == 5 and all(a["detail"] == "form from 127.0.0.3" for a in rows)


async def test_the_address_ceiling_spares_users_known_at_that_address(
        secure_broker: Broker, tmp_path: Path) -> None:
    login = LoginSettings(address_limit=3, free_failures=50)  # type: ignore[call-arg]
    async with serving(settings_for(secure_broker, tmp_path, login=login)) as (_, addr):
        known, new = await add_user(addr, "ketoan"), await add_user(addr, "thuquy")
        async with client(addr, "127.0.0.5") as nat:
            assert (await nat.get("/api/me", auth=("ketoan", known))).status_code == 200
            for i in range(3):
                assert (await nat.get("/api/me", auth=(f"spray{i}", WRONG))).status_code == 401
            r = await nat.get("/api/me", auth=("spray9", WRONG))
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert (await nat.get("/api/me", auth=("thuquy", new))).status_code == 429  # spraying halted
            assert (await nat.get("/api/me", auth=("ketoan", known))).status_code == 200  # known: exempt
        async with client(addr, "127.0.0.6") as other:
            assert (await other.get("/api/me", auth=("thuquy", new))).status_code == 200


async def test_limiter_state_stays_bounded(secure_broker: Broker, tmp_path: Path) -> None:
    login = LoginSettings(max_entries=3, free_failures=50, address_limit=1000)  # type: ignore[call-arg]
    async with serving(settings_for(secure_broker, tmp_path, login=login)) as (app, addr):
        limiter = app.state.services.login_limiter
        async with client(addr, "127.0.0.7") as c:
            for i in range(6):
                r = await c.get("/api/nodes", auth=(f"x{i}-" + "a" * 1000, WRONG))
                assert r.status_code == 401
            assert len(limiter) <= 3 + 1  # 3 (user, address) pairs at most, and the one address
            before = len(limiter)
            for _ in range(30):  # no credentials: nothing is kept
                assert (await c.get("/api/nodes")).status_code == 401
            assert len(limiter) == before
            assert (await c.get("/api/nodes", auth=ADMIN)).status_code == 200


async def test_failed_basic_logins_are_audited_without_flooding_the_log(
        secure_broker: Broker, tmp_path: Path) -> None:
    login = LoginSettings(audit_per_address=3, free_failures=50)  # type: ignore[call-arg]
    async with serving(settings_for(secure_broker, tmp_path, login=login)) as (_, addr):
        async with client(addr, "127.0.0.8") as flood:
            for i in range(6):
                assert (await flood.get("/api/nodes", auth=(f"u{i}", WRONG))).status_code == 401
        async with client(addr, "127.0.0.9") as other:
            r = await other.post("/api/login", json={"username": "u0", "password": WRONG})
            assert r.status_code == 401
        rows = await audit_rows(addr, "login_failed")
        assert sorted(a["detail"] for a in rows) == ["basic from 127.0.0.8"] * 3 + ["form from 127.0.0.9"]
        assert {a["username"] for a in rows if "127.0.0.8" in a["detail"]} == {"u0", "u1", "u2"}
        async with client(addr, auth=ADMIN) as admin:  # the legitimate user is unaffected
            assert (await admin.get("/api/nodes")).status_code == 200


async def test_forged_forwarded_for_is_ignored(secure_broker: Broker, tmp_path: Path) -> None:
    async with serving(settings_for(secure_broker, tmp_path)) as (_, addr):
        async with client(addr) as c:
            for i in range(5):  # a fresh forged address every time
                forged = {"X-Forwarded-For": f"203.0.113.{i}"}
                r = await c.get("/api/nodes", auth=("admin", WRONG), headers=forged)
                assert r.status_code == 401
            r = await c.get("/api/nodes", auth=("admin", WRONG), headers={"X-Forwarded-For": "203.0.113.99"})
            assert r.status_code == 429  # the forged addresses bought no fresh attempts
        rows = await audit_rows(addr, "login_failed")
        assert [a["detail"] for a in rows] == ["basic from 127.0.0.1"] * 5
        async with client(addr, "127.0.0.2", auth=ADMIN) as admin:
            assert (await admin.get("/api/nodes")).status_code == 200


async def test_forwarded_for_is_believed_from_a_configured_proxy(secure_broker: Broker,
                                                                 tmp_path: Path) -> None:
    http = HttpSettings(trusted_proxies=["127.0.0.1"])  # type: ignore[call-arg]
    async with serving(settings_for(secure_broker, tmp_path, http=http)) as (_, addr):
        async with client(addr) as proxy:
            forwarded = {"X-Forwarded-For": "198.51.100.7"}
            r = await proxy.get("/api/nodes", auth=("admin", WRONG), headers=forwarded)
            assert r.status_code == 401
        assert [a["detail"] for a in await audit_rows(addr, "login_failed")] == ["basic from 198.51.100.7"]


async def test_password_change_guesses_back_off_and_the_policy_holds(
        secure_broker: Broker, tmp_path: Path) -> None:
    async with serving(settings_for(secure_broker, tmp_path)) as (_, addr):
        pw = await add_user(addr, "pheduyet", "approver")
        async with client(addr, "127.0.0.2") as c:
            r = await c.post("/api/login", json={"username": "pheduyet", "password": pw})
            c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
            for weak in ("matkhau123", "Admin@123456", "123456789012", "pheduyet-2024", "Vietnam@2025!",
                         "aaaaaaaaaaaa", "short"):
                r = await c.post("/api/me/password", json={"current": pw, "new": weak})
                assert r.status_code == 422, (weak, r.text)
                assert isinstance(r.json()["detail"], (str, list))
            assert (await c.get("/api/me")).status_code == 200  # nothing changed, the session lives
            for _ in range(5):  # someone at an unlocked phone guesses the current password
                r = await c.post("/api/me/password", json={"current": WRONG, "new": "a-long-good-phrase"})
                assert r.status_code == 403
            r = await c.post("/api/me/password", json={"current": pw, "new": "a-long-good-phrase"})
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert (await c.get("/api/me")).status_code == 200
        async with client(addr, "127.0.0.3") as fresh:  # the password is unchanged
            r = await fresh.post("/api/login", json={"username": "pheduyet", "password": pw})
            assert r.status_code == 200
            fresh.headers["X-CSRF-Token"] = r.json()["csrf_token"]
            r = await fresh.post("/api/me/password", json={"current": pw, "new": "gió mùa đông bắc về"})
            assert r.status_code == 200, r.text
        rows = await audit_rows(addr, "password_change_failed")
        assert [a["detail"] for a in rows] == ["password change from 127.0.0.2"] * 5


# --------------------------------------------------------------------------- broker-free


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_backoff_doubles_and_ends() -> None:
    clock = _Clock()
    lim = LoginLimiter(LoginSettings(base_delay_s=30, max_delay_s=120, window_s=600),  # type: ignore[call-arg]
                       clock=clock)
    for _ in range(5):
        assert lim.retry_after("a", "1.1.1.1") == 0
        lim.failed("a", "1.1.1.1")
    waits = []
    for _ in range(4):
        waits.append(lim.retry_after("a", "1.1.1.1"))
        clock.t += waits[-1]
        assert lim.retry_after("a", "1.1.1.1") == 0
        lim.failed("a", "1.1.1.1")
    assert waits == [30, 60, 120, 120]
    assert lim.retry_after("a", "2.2.2.2") == 0 and lim.retry_after("b", "1.1.1.1") == 0
    lim.succeeded("a", "1.1.1.1")
    assert lim.retry_after("a", "1.1.1.1") == 0


def test_a_guesser_behind_the_office_nat_does_not_lock_out_the_office() -> None:
    lim = LoginLimiter(clock=_Clock())  # the defaults
    for i in range(21):  # password spraying from the office's one address: the old limit was 20
        assert lim.retry_after(f"user{i}", "113.160.1.1") == 0
        lim.failed(f"user{i}", "113.160.1.1")
    assert lim.retry_after("vanthu", "113.160.1.1") == 0


def test_an_ipv6_subscriber_is_one_client() -> None:
    lim = LoginLimiter(clock=_Clock())
    for i in range(5):  # rotating privacy addresses of one /64 buys no fresh attempts
        assert lim.failed("admin", f"2001:db8:1:2::{i + 1:x}") == f"2001:db8:1:2::{i + 1:x}"
    assert lim.retry_after("admin", "2001:db8:1:2:ffff::9") > 0
    assert lim.retry_after("admin", "2001:db8:1:3::1") == 0  # another subscriber
    for _ in range(5):
        lim.failed("admin", "::ffff:192.0.2.7")  # an IPv4 client on a dual-stack socket
    assert lim.retry_after("admin", "192.0.2.7") > 0


def test_limiter_tables_are_bounded_and_expire() -> None:
    clock = _Clock()
    lim = LoginLimiter(LoginSettings(max_entries=100, window_s=600, max_delay_s=600),  # type: ignore[call-arg]
                       clock=clock)
    for i in range(20_000):
        lim.failed(f"user{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        lim.retry_after(f"other{i}", "10.0.0.1")
    assert len(lim) <= 200
    clock.t += 601
    lim.failed("late", "10.9.9.9")
    assert len(lim) == 2  # the silent entries are gone: one pair and one address left


def test_audit_budget_counts_what_it_does_not_write() -> None:
    clock = _Clock()
    lim = LoginLimiter(LoginSettings(audit_per_address=2, window_s=100, max_delay_s=100),  # type: ignore[call-arg]
                       clock=clock)
    details = [lim.failed(f"u{i}", "1.2.3.4") for i in range(5)]
    assert details == ["1.2.3.4", "1.2.3.4", None, None, None]
    clock.t += 50  # one row's worth of budget back
    note = "1.2.3.4 (+3 earlier failures from this address not logged one by one)"
    assert lim.failed("u9", "1.2.3.4") == note
    assert lim.failed("u0", "5.6.7.8") == "5.6.7.8"


class _CountingHasher(PasswordHasher):
    verified: int = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        type(self).verified += 1
        return super().verify(hash, password)


def test_unknown_and_disabled_users_cost_an_argon2_verification(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'v.db'}")
    db.migrate()
    with Session(db.engine) as s:
        s.add(User(username="on", password_hash=hash_password("right-password-1"), role="editor"))
        s.add(User(username="off", password_hash=hash_password("right-password-1"), role="editor",
                   active=False))
        s.commit()
        verifier = Verifier(_CountingHasher())
        for name in ("nobody", "off", "on"):
            before = _CountingHasher.verified
            assert verifier.check(s, name, "wrong-password-1") is None
            assert _CountingHasher.verified == before + 1, name
        assert verifier.check(s, "on", "right-password-1") is not None
        assert verifier.check(s, "off", "right-password-1") is None
    db.dispose()


def test_password_policy() -> None:
    assert len(common_passwords()) > 2000
    for weak in ("matkhau123", "123456789", "admin@123", "Admin@123", "P@ssw0rd2024", "anhyeuem123",
                 "qwertyuiop", "1234567890", "0912345678", "iloveyou2024", "MATKHAU@2024"):
        assert password_problem(weak) is not None, weak
    assert password_problem("nguyenvana-2024", "nguyenvana") is not None
    assert password_problem("xin-chao-nguyenvana", "NguyenVanA") is not None
    for good in ("gió mùa đông bắc", "correct horse battery", "test-password-1", "Tx7-pq2m-Lw9z"):
        assert password_problem(good, "admin") is None, good


def test_weak_configured_admin_password_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    db.migrate()
    with Session(db.engine) as s:
        with pytest.raises(ValueError, match="common"):
            ensure_admin(s, "matkhau@2024")
        assert ensure_admin(s, "a-long-ward-phrase") == "a-long-ward-phrase"
    db.dispose()


def test_serve_does_not_trust_forwarded_headers_by_default(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    import uvicorn

    from controller.cli import loaphuong as cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    args = argparse.Namespace(host="127.0.0.1", port=0, data_dir=str(tmp_path), database_url=None,
                              mqtt_host=None, mqtt_port=None, tls_cert=None, tls_key=None,
                              tls_self_signed=False)
    assert cli.cmd_serve(args) == 0
    assert seen["proxy_headers"] is False
    monkeypatch.setenv("LOAPHUONG_HTTP__TRUSTED_PROXIES", '["10.0.0.2"]')
    assert cli.cmd_serve(args) == 0
    assert seen["proxy_headers"] is True and seen["forwarded_allow_ips"] == ["10.0.0.2"]


def test_cli_applies_the_password_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from controller.cli.users import user_main

    def run(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return user_main([*argv, "--data-dir", str(tmp_path)])

    assert run("add", "kt1", "--role", "editor", "--password-stdin", stdin="matkhau123\n") == 1
    assert run("add", "kt1", "--role", "editor", "--password-stdin", stdin="kt1-my-phrase\n") == 1
    assert "error:" in capsys.readouterr().err
    assert run("add", "kt1", "--role", "editor", "--password-stdin", stdin="gió mùa đông bắc\n") == 0
    assert "gió" not in capsys.readouterr().out  # a chosen password is never printed
    assert run("passwd", "kt1", "--password-stdin", stdin="Admin@123456\n") == 1
    assert run("passwd", "kt1") == 0 and "one-time" in capsys.readouterr().out
    db = Database(f"sqlite:///{tmp_path / 'loaphuong.db'}")
    with db.session() as s:
        assert Verifier().check(s, "kt1", "gió mùa đông bắc") is None  # replaced by the one-time one
    db.dispose()
