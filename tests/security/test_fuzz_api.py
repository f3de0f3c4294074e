"""Schemathesis with ALL its checks against a running controller (real uvicorn on 127.0.0.1, a
real Mosquitto): the schemathesis engine (what ``st run --checks all`` runs) over every operation
of the OpenAPI schema, with its examples, coverage (boundary and negative values, wrong types,
missing fields, unexpected methods) and fuzzing phases. The schema is fetched as the admin
(``/openapi.json`` needs a login, issue 11 item 22).

What must hold, for every generated request:

* no server error (5xx) — the API answers a bad request with a 4xx and a clear ``detail``;
* the response body matches the schema documented for its status (``ErrorPublic`` /
  ``InvalidPublic`` for refusals, the route's ``response_model`` for successes), and so do its
  status (the error statuses are declared once, in controller/api/__init__.py), content type,
  headers and, for a method the path does not take, the 405's ``Allow``;
* a request the schema calls invalid is refused, a request the schema calls valid is accepted —
  except for the refusals listed in ``SEMANTIC`` (below): statuses a schema-valid request
  rightly gets because of what it *means*, not its shape (text that reads aloud as silence, a
  target with no units, an air time in the past → 422). 401/403/404/409/429 (an id that names
  nothing, a bulletin not approved...) are accepted by schemathesis' default already; 422 only
  for the operations listed, each with its reason;
* the login backoff (429 to repeated wrong credentials) refuses just as 401 does:
  ``ignored_auth`` probes with fixed wrong credentials, so after a few it meets the backoff,
  which is the point of the backoff — a 429 there counts as refused (``_refused_by_backoff``).
  The password operations work on throwaway accounts, so the admin is never backed off;
* unknown query parameters may be ignored (schemathesis does not count them as invalid) and the
  test's own login is not fuzzed (``with-security-parameters`` off): it logs in as the admin.

Generated requests rarely mean something (an approved bulletin, a unit that exists), so
``test_success_answers_match_the_schema`` runs a scripted ward day through the same checks and
requires each step to succeed; afterwards the admin still works, what was seeded is still there
and no approved bulletin airs other audio than the one approved.

Left out on purpose: login / logout (they would trip the login backoff for the test's own
account or end the session under test), disabling users (``PATCH /api/users/{id}`` would lock out
the admin running the test) and the endless SSE stream (``/api/broadcasts/{id}/events``).
Bounded: a few examples per operation, deterministic (same seed, no cache: the same cases on
every run), no shrinking; about a minute on an idle 2-core machine.
"""

from __future__ import annotations

import io
import math
import struct
import time
import wave
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis import engine
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.engine import events
from schemathesis.openapi.checks import IgnoredAuth

from devices.broker import BrokerProcess, mosquitto_path
from tests.conftest import ADMIN, make_settings
from tests.e2e.helpers import allowing
from tests.e2e.test_browser import Server

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.timeout(300)]

SKIP = {("POST", "/api/login"), ("POST", "/api/logout"), ("PATCH", "/api/users/{user_id}"),
        ("GET", "/api/broadcasts/{broadcast_id}/events")}

# Schema-valid requests that are rightly refused for what they mean (see the module docstring).
# 401/403/404/409/429 are accepted for every operation by schemathesis' default; 422 only here:
SEMANTIC: dict[str, str] = {
    "POST /api/bulletins": "text with nothing to read aloud (empty, punctuation, or read as silence)",
    "POST /api/speech/preview": "text with nothing to read aloud",
    "PATCH /api/bulletins/{bulletin_id}": "the same as POST for the new text; a voice not installed",
    "POST /api/speech/normalize": "text with nothing to read aloud; an engine or voice not installed",
    "POST /api/bulletins/recordings": "a file that is not audio (empty, or nothing decodable)",
    "POST /api/relays": "a target with no units; a start time in the past",
    "POST /api/broadcasts": "a target with no units; an air time in the past",
    "POST /api/schedules": "a target with no units; a 'when' without what its kind needs (cron: a cron)",
    "PATCH /api/schedules/{schedule_id}": "the same, for the changed fields",
    "POST /api/nodes/{node_id}/commands": "arguments the command does not take",
    "POST /api/zones/{zone_id}/commands": "arguments the command does not take",
    "POST /api/users": "a user name that exists; an org unit that does not",
    "POST /api/library": "a file that is not audio (empty, or nothing decodable); a title over its length",
    "POST /api/library/{item_id}/bulletin": "an id beyond the database's integers",
    "DELETE /api/library/{item_id}": "an id beyond the database's integers",
    "POST /api/zones/{zone_id}/windows": "an on or off time that is not a time of day ('')",
    "GET /api/agenda": "a 'to' without 'from', a range that ends before it starts or spans over 62 days",
    "GET /api/audit": "a period that ends before it starts",
    "PATCH /api/speech/dictionary/{entry_id}": "neither a new reading nor a note ({})",
}
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]

CONFIG: dict[str, Any] = {
    "seed": 11,
    "cache": {"enabled": False},  # no .schemathesis/ carried from run to run: the same cases every time
    "generation": {"max-examples": 6, "deterministic": True, "no-shrink": True, "database": "none",
                   "with-security-parameters": False},  # the test logs in itself (Basic, as the admin)
    "checks": {"enabled": True, "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx"]}},
    "phases": {"stateful": {"enabled": False}},
    "request-timeout": 60,
    "operations": [{"include-name": label, "checks": {
        "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}}} for label in SEMANTIC],
}


TEXT = "Sáng mai phường tổ chức tiêm phòng"
STATION = "http://127.0.0.1:9/radio.mp3"  # allow-listed (not public); units would fetch it themselves
SILENT = "\u0c7b"  # a Telugu fraction sign: a letter to the normaliser, silence to espeak-ng


def _get(url: str, path: str, **kw: Any) -> requests.Response:
    return requests.get(url + path, auth=ADMIN, timeout=30, **kw)


def _post(url: str, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(url + path, json=body, auth=ADMIN, timeout=60)


def _seed(url: str) -> dict[str, Any]:
    """A zone, a unit, a bulletin (the admin's: approved by its author), a dictionary entry and
    two throwaway accounts: lists return real rows to validate, and the password operations have
    someone else to work on."""
    assert _post(url, "/api/zones", {"id": "z1", "name": "Tổ 1"}).status_code == 201
    assert _post(url, "/api/nodes", {"id": "n1", "zones": ["z1"]}).status_code == 201
    r = _post(url, "/api/bulletins", {"title": "Tiêm phòng", "text": TEXT})
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    # a schedule airs it, so the fuzzer's DELETE of a bulletin is refused (409) for this one
    r = _post(url, "/api/schedules", {"bulletin_id": bid, "target": {"zones": ["z1"]},
                                      "when": {"kind": "daily", "times": ["06:00"]}})
    assert r.status_code == 201, r.text
    _post(url, "/api/speech/dictionary", {"word": "UBND", "reading": "ủy ban nhân dân"})
    users = {}
    for name in ("fuzz-self", "fuzz-reset"):
        r = _post(url, "/api/users", {"username": name, "role": "editor"})
        assert r.status_code == 201, r.text
        users[name] = r.json()
    return {"bulletin": bid, "users": users}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any]]]:
    """A controller with a broker (commands reach ``offline``, not 503) and a little data."""
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed; tests/run.sh installs it (apt-get install mosquitto)")
    with BrokerProcess("mosquitto") as broker, \
            Server(allowing(make_settings(tmp_path_factory.mktemp("fuzz"), broker.port), STATION)) as srv:
        yield srv, _seed(srv.url)


def _schema(srv: Server, seed: dict[str, Any]) -> Any:
    r = _get(srv.url, "/openapi.json")  # behind login (issue 11, item 22): fetched as the admin
    assert r.status_code == 200, r.text
    raw = r.json()
    for method, path in SKIP:
        raw["paths"].get(path, {}).pop(method.lower(), None)
    me, reset = seed["users"]["fuzz-self"], seed["users"]["fuzz-reset"]
    own = [
        # wrong current passwords back off (item 17): guessed as a throwaway user, not the admin
        {"include-name": "POST /api/me/password",
         "auth": {"basic": {"username": me["username"], "password": me["password"]}}},
        # resetting a password ends that account's sessions: never the admin's own
        {"include-name": "POST /api/users/{user_id}/password", "parameters": {"user_id": reset["id"]}},
    ]
    config = {**CONFIG, "base-url": srv.url, "workers": 1, "operations": [*CONFIG["operations"], *own],
              "auth": {"basic": {"username": ADMIN[0], "password": ADMIN[1]}}}
    return schemathesis.openapi.from_dict(raw, config=SchemathesisConfig.from_dict(config))


def _refused_by_backoff(check: Any) -> bool:
    """``ignored_auth`` met the login backoff: 429 to wrong credentials is a refusal too."""
    return bool(check.name == "ignored_auth" and check.failure_info is not None
                and "got `429" in check.failure_info.failure.message)


def _describe(recorder: Any, case_id: str, check: Any) -> str:
    info = check.failure_info
    got = recorder.interactions.get(case_id)
    status = got.response.status_code if got is not None and got.response is not None else "-"
    what = f"{info.failure.title}: {info.failure.message[:300]}\n    {info.code_sample}" if info else ""
    return f"{recorder.label} → {status} [{check.name}] {what}"


@dataclass
class Outcome:
    tested: set[str] = field(default_factory=set)  # operations
    succeeded: set[str] = field(default_factory=set)  # operations that answered a 2xx at least once
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def _run(schema: Any) -> Outcome:
    """The schemathesis engine (what ``st run`` runs) over every operation, all checks."""
    out = Outcome()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            rec = event.recorder
            out.tested.add(rec.label)
            got = [i.response.status_code for i in rec.interactions.values() if i.response is not None]
            out.statuses.update(got)
            if any(200 <= code < 300 for code in got):
                out.succeeded.add(rec.label)
            for case_id, checks in rec.checks.items():
                out.failures += [_describe(rec, case_id, c) for c in checks
                                 if c.status == engine.Status.FAILURE and not _refused_by_backoff(c)]
        elif isinstance(event, events.NonFatalError):
            out.failures.append(f"{event.label}: error {event.value!r}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return out


def test_api_conforms_to_its_schema(fuzz_server: tuple[Server, dict[str, Any]]) -> None:
    srv, seed = fuzz_server
    out = _run(_schema(srv, seed))
    assert len(out.tested) >= 55, sorted(out.tested)
    assert not out.failures, f"{len(out.failures)} failures:\n" + "\n".join(dict.fromkeys(out.failures))
    # it reached the routes (real answers, not the login backoff)
    assert out.statuses.get(429, 0) < 0.05 * sum(out.statuses.values()), out.statuses
    assert len(out.succeeded) >= 30, sorted(out.tested - out.succeeded)


def _eventually(url: str, path: str, deadline_s: float = 15.0) -> None:
    end = time.monotonic() + deadline_s
    while (r := _get(url, path)).status_code == 404 and time.monotonic() < end:
        time.sleep(0.1)
    assert r.status_code == 200, f"{path} → {r.status_code}: {r.text[:200]}"


def _wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(seconds * rate))))
    return buf.getvalue()


def test_success_answers_match_the_schema(fuzz_server: tuple[Server, dict[str, Any]]) -> None:
    """Generated requests rarely mean something (an approved bulletin, a unit that exists), so the
    success answers of the operations that need one are checked on a scripted ward day: each
    request through schemathesis with all checks, and it must succeed."""
    srv, seed = fuzz_server
    schema = _schema(srv, seed)
    admin = requests.Session()
    admin.auth = ADMIN

    def call(label: str, *, session: requests.Session = admin, expect: int = 0, **kw: Any) -> Any:
        method, path = label.split(" ", 1)
        case = schema[path][method].Case(**kw)
        r = case.call(base_url=srv.url, session=session, auth=session.auth)
        try:
            case.validate_response(r, transport_kwargs={"base_url": srv.url, "session": session,
                                                        "auth": session.auth})
        except FailureGroup as group:
            if not all(isinstance(f, IgnoredAuth) and "got `429" in f.message for f in group.exceptions):
                raise
        assert r.status_code == expect if expect else 200 <= r.status_code < 300, \
            f"{label} → {r.status_code}: {r.text[:300]}"
        return r.json() if "json" in " ".join(r.headers.get("content-type", [])) else None

    # its own zone and unit: the fuzzing may have moved or retired the seeded ones
    call("POST /api/zones", body={"id": "z2", "name": "Tổ 2"})
    call("POST /api/nodes", body={"id": "n2", "zones": ["z2"], "lat": 10.77, "lon": 106.7})
    me = seed["users"]["fuzz-self"]  # an editor: their bulletins need approval
    editor = requests.Session()
    editor.auth = (me["username"], me["password"])
    bid = call("POST /api/bulletins", session=editor,
               body={"title": "Họp tổ", "text": "Tối nay họp tổ lúc 19h"})["id"]
    other = call("POST /api/bulletins", session=editor, body={"text": "Thông báo thử"})["id"]
    for b in (bid, other):
        call("POST /api/bulletins/{bulletin_id}/submit", session=editor, path_parameters={"bulletin_id": b})
    call("POST /api/bulletins/{bulletin_id}/approve", path_parameters={"bulletin_id": bid}, body={})
    call("POST /api/bulletins/{bulletin_id}/reject", path_parameters={"bulletin_id": other},
         body={"note": "sai giờ"})
    call("GET /api/bulletins/{bulletin_id}", path_parameters={"bulletin_id": bid})
    rec = call("POST /api/bulletins/recordings", body={"file": _wav(), "title": "Ghi âm"},
               media_type="multipart/form-data")
    assert rec["id"] > other

    at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    bc = call("POST /api/broadcasts", body={"bulletin_id": bid, "target": {"zones": ["z2"]}, "air_at": at})
    call("GET /api/broadcasts/{broadcast_id}", path_parameters={"broadcast_id": bc["id"]})
    call("POST /api/broadcasts/{broadcast_id}/cancel", path_parameters={"broadcast_id": bc["id"]})

    sched = call("POST /api/schedules", body={"bulletin_id": bid, "target": {"zones": ["z2"]},
                                              "when": {"kind": "daily", "times": ["06:00"]}})
    sid = {"schedule_id": sched["id"]}
    call("GET /api/schedules/{schedule_id}", path_parameters=sid)
    call("PATCH /api/schedules/{schedule_id}", path_parameters=sid, body={"enabled": False})
    call("GET /api/schedules/{schedule_id}/runs", path_parameters=sid)
    call("DELETE /api/schedules/{schedule_id}", path_parameters=sid)

    cmd = call("POST /api/nodes/{node_id}/commands", path_parameters={"node_id": "n2"},
               body={"name": "ping", "timeout_s": 1})
    assert [r["status"] for r in cmd["results"]] == ["offline"]
    _eventually(srv.url, f"/api/commands/{cmd['id']}")  # the writer stores it in the background
    call("GET /api/commands/{command_id}", path_parameters={"command_id": cmd["id"]})
    call("POST /api/zones/{zone_id}/commands", path_parameters={"zone_id": "z2"},
         body={"name": "volume", "args": {"level": 40}, "timeout_s": 1})

    relay = call("POST /api/relays", body={"url": STATION, "target": {"zones": ["z2"]}, "mode": "node_fetch",
                                           "start_at": at, "duration_s": 600})
    rid = {"relay_id": relay["id"]}
    call("GET /api/relays/{relay_id}", path_parameters=rid)
    assert call("DELETE /api/relays/{relay_id}", path_parameters=rid)["state"] == "ended"

    preview = call("POST /api/speech/preview", body={"text": "Xin chào bà con"})
    for label in ("POST /api/speech/preview", "POST /api/bulletins"):  # read aloud as silence: 422, not 503
        silent = call(label, expect=422, body={"text": SILENT})
        assert "silence" in silent["detail"], silent
    # a control character in a title must not break the export (issue 11, item 12)
    odd = call("POST /api/bulletins", body={"title": "Tin\x01 thử\x1f", "text": "Tin thử"})["id"]
    call("POST /api/broadcasts", body={"bulletin_id": odd, "target": {"zones": ["z2"]}, "air_at": at})
    for report in ("/api/reports/broadcasts.xlsx", "/api/reports/broadcasts.csv"):
        call(f"GET {report}")
    call("GET /api/speech/audio/{sha256}", path_parameters={"sha256": preview["sha256"]})
    call("POST /api/users", body={"username": "fuzz-new", "role": "operator"})
    call("POST /api/me/password", session=editor,
         body={"current": me["password"], "new": "rất-khó-đoán-" + me["password"]})
    editor.close()
    admin.close()


def test_a_wrong_method_names_the_real_ones(fuzz_server: tuple[Server, dict[str, Any]]) -> None:
    """405 with the path's own methods (not the static files' "GET, HEAD"); an unknown API path is
    a JSON 404; the web app's files are still served."""
    srv, _ = fuzz_server
    for method, path, allow in [("PUT", "/api/nodes/n1", "DELETE, GET, HEAD, PATCH"),
                                ("OPTIONS", "/api/broadcasts", "GET, HEAD, POST"),
                                ("GET", "/api/me/password", "POST"),
                                ("GET", "/api/bulletins/recordings", "POST"),
                                ("DELETE", "/app.js", "GET, HEAD")]:
        r = requests.request(method, srv.url + path, auth=ADMIN, timeout=30)
        assert (r.status_code, r.headers.get("allow")) == (405, allow), (method, path, r.text)
        assert method in r.json()["detail"]
    r = _get(srv.url, "/api/no-such-thing")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = requests.get(srv.url + "/app.js", timeout=30)
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]


def test_after_fuzzing_nothing_lost(fuzz_server: tuple[Server, dict[str, Any]]) -> None:
    """Runs after the fuzzing (pytest keeps file order): the admin still works, what was seeded is
    still there, and no request shape left an approved bulletin airing other audio than the one
    approved (edits re-open approval, issue 11 item 4)."""
    srv, seed = fuzz_server
    me = _get(srv.url, "/api/me")
    assert me.status_code == 200 and me.json()["username"] == ADMIN[0]
    assert "z1" in {z["id"] for z in _get(srv.url, "/api/zones").json()}
    assert _get(srv.url, "/api/nodes/n1").status_code == 200  # even if the fuzzing retired it
    assert _get(srv.url, f"/api/bulletins/{seed['bulletin']}").status_code == 200
    bulletins = _get(srv.url, "/api/bulletins", params={"limit": 500}).json()
    assert seed["bulletin"] in {b["id"] for b in bulletins}
    for b in bulletins:
        if b["approval"] == "approved":
            assert b["audio"] is not None and b["approved_sha256"] == b["audio"]["sha256"], b
    assert _get(srv.url, "/api/health").status_code == 200
