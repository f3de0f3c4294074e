"""The failed-login backoff counted by several controllers together (controller/accounts/loginlimit.py,
issue 16): outcomes seen elsewhere arrive through the change feed as :func:`shared_key` strings.

After: failures seen by another controller slow the pair here as if seen here, in their order (a
success after them clears them), without spending this controller's audit budget; a success
is worth telling only when it changed something; unreadable keys are ignored; two controllers on
one SQLite file (the in-process bus) share a guesser's failures through their login route."""

from __future__ import annotations

import json
from pathlib import Path

from controller.accounts.loginlimit import LoginLimiter, shared_key
from controller.core.web_settings import LoginSettings
from devices.broker import free_port
from tests.conftest import make_settings, running_controller
from tests.fakes import until


def _limiter() -> LoginLimiter:
    return LoginLimiter(LoginSettings(free_failures=3, audit_per_address=2))  # type: ignore[call-arg]


def test_failures_elsewhere_count_here_in_their_order_without_audit_budget() -> None:
    lim = _limiter()
    lim.apply_shared(frozenset(shared_key(False, "ghost", "10.0.0.9") for _ in range(3)))
    assert lim.retry_after("ghost", "10.0.0.9") > 0 and lim.retry_after("ghost", "10.0.0.8") == 0
    assert lim.unaudited_total == 0  # those were audited where they happened
    assert lim.failed("other", "10.0.0.9") == "10.0.0.9"  # this controller's budget is whole
    keys = [shared_key(False, "u", "10.0.0.7") for _ in range(3)] + [shared_key(True, "u", "10.0.0.7")]
    assert json.loads(keys[-1])[0] >= json.loads(keys[0])[0]
    lim.apply_shared(frozenset(keys))  # a set: the times put the success last
    assert lim.retry_after("u", "10.0.0.7") == 0
    lim.apply_shared(frozenset({"not json", '["too", "short"]'}))
    lim.apply_shared(None)  # (a reload of everything: nothing to reload)


def test_a_success_is_news_only_when_it_changed_something() -> None:
    lim = _limiter()
    assert lim.succeeded("u", "10.0.0.1")  # not known from there before
    assert not lim.succeeded("u", "10.0.0.1")  # known, no failures: nothing to tell
    lim.failed("u", "10.0.0.1")
    assert lim.succeeded("u", "10.0.0.1")  # its failure dropped


async def test_two_controllers_on_one_database_share_a_guessers_failures(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    settings = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        settings.append(make_settings(tmp_path / name, free_port()).model_copy(update={"database_url": url}))
    async with running_controller(settings[0]) as (app_a, a), running_controller(settings[1]) as (app_b, b):
        free = settings[0].login.free_failures
        for _ in range(free):
            r = await a.post("/api/login", json={"username": "ghost", "password": "wrong-one"}, auth=None)
            assert r.status_code == 401, r.text
        lim_b = app_b.state.services.login_limiter
        await until(lambda: lim_b.retry_after("ghost", "127.0.0.1") > 0, "B counting A's failures", 10)
        r = await b.post("/api/login", json={"username": "ghost", "password": "wrong-two"}, auth=None)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0, r.text
        r = await b.post("/api/login", json={"username": "admin", "password": settings[1].admin_password},
                         auth=None)
        assert r.status_code == 200, r.text  # another user from the same address is not slowed
        feed_a = app_a.state.services.feed  # B's success is news (admin not known from there): told to A
        await until(lambda: feed_a.stats["notified"] >= 1, "A told of B's success", 10)
