"""Controllers as peers (issue 16 part 1): three controllers on one PostgreSQL database and one
Mosquitto, none restarted.

After: a zone and unit provisioned through A are known to B and C within seconds, which show it
online and can command it (and C airs a bulletin to it: played); a desired volume set through
C, a rename / re-zone through C and a retirement through B reach the others; a user created on
A logs in on C, and five failed logins spread over A, B and C slow the guesser on all three;
the delivery view's event stream on B follows, state by state, a broadcast that A is delivering
(also while B's LISTEN connection is down: it reads the state every 2 s then); a LISTEN
connection killed with pg_terminate_backend reconnects, and what was written while it
was gone is applied (from the change log); a schedule made on the standby reaches the leader
at once, not at its next reconcile."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlmodel import select

from controller.accounts.models import User
from controller.core.db_settings import DatabaseSettings
from controller.fleet.settings import MqttSettings
from controller.services import Services
from controller.settings import Settings
from controller.ui import delivery_view
from devices.broker import BrokerProcess
from scheduler.jobs import job_id
from scheduler.runner import ScheduleService
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, sim, wait_broadcast, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.timeout(180)]

Peer = tuple[Services, httpx.AsyncClient]


@asynccontextmanager
async def peers(tmp_path: Path, pg_url: str, port: int, n: int = 3,
                tweak: Callable[[Settings], Settings] = lambda s: s,
                **db: float) -> AsyncIterator[list[Peer]]:
    """``n`` controllers, each with its own data directory, on one database and one broker."""
    async with AsyncExitStack() as stack:
        out: list[Peer] = []
        for i in range(n):
            (tmp_path / f"c{i}").mkdir()
            base = make_settings(tmp_path / f"c{i}", port)
            settings = tweak(base.model_copy(update={
                "database_url": pg_url, "mqtt": MqttSettings(port=port),  # type: ignore[call-arg]
                "database": DatabaseSettings(**db)}))  # type: ignore[arg-type]
            app, api = await stack.enter_async_context(running_controller(settings))
            out.append((app.state.services, api))
        await wait_for(lambda: all(sv.feed.listener.listening and sv.link.connected for sv, _ in out), 30,
                       "every controller listening and connected")
        yield out


async def _status(api: httpx.AsyncClient, node_id: str) -> str:
    r = await api.get(f"/api/nodes/{node_id}")
    return str(r.json()["status"]) if r.status_code == 200 else f"http {r.status_code}"


async def test_a_unit_provisioned_on_a_is_known_to_b_and_c(tmp_path: Path, pg_url: str,
                                                           mosquitto: BrokerProcess) -> None:
    # feed_poll_s 60: only the notifications can bring the changes within the test's deadlines
    async with peers(tmp_path, pg_url, mosquitto.port, feed_poll_s=60) as [(sv_a, a), (sv_b, b), (sv_c, c)]:
        assert (await b.get("/api/nodes/p1")).status_code == 404
        r = await a.post("/api/zones", json={"id": "z1", "name": "Tổ dân phố 1"})
        assert r.status_code == 201, r.text
        r = await a.post("/api/nodes", json={"id": "p1", "name": "Loa 1", "zones": ["z1"]})
        assert r.status_code == 201, r.text
        t0 = time.monotonic()
        await wait_for(lambda: sv_b.presence.knows("p1") and sv_c.presence.knows("p1"), 10,
                       "p1 known to B and C")
        known_s = time.monotonic() - t0
        node = sim("p1", mosquitto.port)
        await node.start()
        try:
            for api in (a, b, c):
                await wait_online(api, ["p1"])
            assert [n["id"] for n in (await c.get("/api/nodes?zone=z1")).json()] == ["p1"]
            r = await b.post("/api/nodes/p1/commands", json={"name": "ping"})
            assert r.status_code == 200 and r.json()["results"][0]["status"] == "ok", r.text
            bid = await air(c, (await bulletin(c, "Thông báo thử loa"))["id"], {"nodes": ["p1"]})
            final = await wait_broadcast(c, bid, 60)  # C delivers to a unit it learned of from A
            assert [d["state"] for d in final["deliveries"]] == ["played"] and final["status"] == "done"
            r = await c.post("/api/zones/z1/commands", json={"name": "volume", "args": {"level": 35}})
            assert r.status_code == 200 and r.json()["results"][0]["status"] == "ok", r.text
            await wait_for(lambda: sv_a.presence.desired_volume("p1") == 35
                           == sv_b.presence.desired_volume("p1"), 10, "C's volume known to A, B")
            assert (await b.post("/api/zones", json={"id": "z2", "name": "Tổ dân phố 2"})).status_code == 201
            r = await c.patch("/api/nodes/p1", json={"name": "Loa chợ", "zones": ["z2"]})
            assert r.status_code == 200, r.text
            await wait_for(lambda: sv_a.presence.groups_of("p1") == ["all", "z2"]
                           == sv_b.presence.groups_of("p1"), 10, "the re-zoning through C known to A and B")
            listed = (await a.get("/api/nodes?zone=z2")).json()
            assert [(n["id"], n["name"]) for n in listed] == [("p1", "Loa chợ")]
            r = await b.delete("/api/nodes/p1")
            assert r.status_code == 200, r.text
            await wait_for(lambda: not sv_a.presence.knows("p1") and not sv_c.presence.knows("p1"), 10,
                           "the retirement through B known to A and C")
            r = await c.post("/api/nodes/p1/commands", json={"name": "ping"})
            assert r.status_code == 404, r.text
        finally:
            await node.stop()
        assert known_s < 10 and sv_b.feed.stats["notified"] >= 3 and sv_b.feed.stats["from_poll"] == 0


async def test_a_user_created_on_a_logs_in_on_c(tmp_path: Path, pg_url: str,
                                                 mosquitto: BrokerProcess) -> None:
    async with peers(tmp_path, pg_url, mosquitto.port) as cluster:
        (_, a), (_, b), (_, c) = cluster
        r = await a.post("/api/users", json={"username": "bientap1", "role": "editor"})
        assert r.status_code == 201, r.text
        password = r.json()["password"]
        r = await c.post("/api/login", json={"username": "bientap1", "password": password}, auth=None)
        assert r.status_code == 200, r.text
        assert r.json()["user"]["username"] == "bientap1" and r.json()["user"]["must_change_password"]
        me = await c.get("/api/me", auth=None)  # the session cookie C set
        assert me.status_code == 200 and me.json()["username"] == "bientap1", me.text
        # a guesser spreading attempts over the three is slowed as by one (5 free failures in all)
        for api in (a, b, c, a, b):
            r = await api.post("/api/login", json={"username": "ghost", "password": "nope-nope"}, auth=None)
            assert r.status_code == 401, r.text
        slowed = [sv.login_limiter for sv, _ in cluster]
        await wait_for(lambda: all(lim.retry_after("ghost", "127.0.0.1") > 0 for lim in slowed), 10,
                       "every controller counting the five failures")
        r = await c.post("/api/login", json={"username": "ghost", "password": "nope-nope"}, auth=None)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0, r.text


class _Connected:
    async def is_disconnected(self) -> bool:
        return False


async def _follow(sv: Services, bid: str, seen: list[dict[str, Any]]) -> None:
    """The delivery view's stream on ``sv``'s controller, every event into ``seen`` until the last."""
    with sv.db.session() as s:
        admin = s.exec(select(User).where(User.username == "admin")).one()
    resp = await delivery_view.delivery_events(bid, _Connected(), sv, admin)  # type: ignore[arg-type]
    async for chunk in resp.body_iterator:
        text = chunk.decode() if isinstance(chunk, bytes) else str(chunk)
        if text.startswith("event: delivery"):
            seen.append({"at": time.monotonic(), **json.loads(text.split("data: ", 1)[1])})


@pytest.mark.parametrize("feed", ["listening", "listener killed"])
async def test_the_delivery_stream_on_b_follows_a_broadcast_aired_through_a(
        feed: str, tmp_path: Path, pg_url: str, mosquitto: BrokerProcess) -> None:
    async with peers(tmp_path, pg_url, mosquitto.port, feed_retry_s=60) as [(sv_a, a), (sv_b, _), _]:
        assert (await a.post("/api/zones", json={"id": "z1", "name": "Tổ dân phố 1"})).status_code == 201
        for n in ("s1", "s2"):
            assert (await a.post("/api/nodes", json={"id": n, "zones": ["z1"]})).status_code == 201
        nodes = [sim(n, mosquitto.port) for n in ("s1", "s2")]
        for node in nodes:
            await node.start()
        try:
            await wait_online(a, ["s1", "s2"])
            await wait_for(lambda: sv_b.presence.knows("s2"), 10, "B knowing the units")
            if feed == "listener killed":  # B hears no notification: its stream reads every REREAD_S
                pid = sv_b.feed.listener.pid
                assert pid is not None
                _terminate(pg_url, pid)
                await wait_for(lambda: not sv_b.feed.live(), 10, "B's listener gone")
            notified = sv_b.feed.stats["notified"]
            b_id = (await bulletin(a, "Thông báo thử loa"))["id"]
            bid = await air(a, b_id, {"zones": ["z1"]})
            seen: list[dict[str, Any]] = []
            await asyncio.wait_for(_follow(sv_b, bid, seen), 90)
        finally:
            for node in nodes:
                await node.stop()
        assert sv_a.delivery.active_count() == 0 and sv_b.delivery.active_count() == 0  # B delivered nothing
        states = [tuple(sorted(d["state"] for d in ev["deliveries"])) for ev in seen]
        assert states[-1] == ("played", "played") and seen[-1]["final"] and seen[-1]["status"] == "done"
        assert len(states) >= 3, states  # the states on the way, not only the first and the last
        assert any("playing" in st or "verified" in st for st in states[:-1]), states
        gaps = [y["at"] - x["at"] for x, y in itertools.pairwise(seen)]
        assert max(gaps) < delivery_view.KEEPALIVE_S, gaps  # woken (or re-read), not only at the keep-alive
        if feed == "listening":
            assert sv_b.feed.stats["notified"] >= notified + 3  # A's delivery changes, notified
        else:
            assert sv_b.feed.stats["notified"] == notified and not sv_b.feed.live()


def _terminate(pg_url: str, pid: int) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


async def test_a_killed_listen_connection_heals(tmp_path: Path, pg_url: str,
                                                mosquitto: BrokerProcess) -> None:
    # B's listener waits 8 s before reconnecting; no periodic poll in the test's time (60 s): what B
    # missed can only come from the poll it runs once it listens again
    async with peers(tmp_path, pg_url, mosquitto.port, feed_retry_s=8.0,
                     feed_poll_s=60) as [(_, a), (sv_b, b), (sv_c, _)]:
        listener = sv_b.feed.listener
        pid = listener.pid
        assert pid is not None
        _terminate(pg_url, pid)
        await wait_for(lambda: not listener.listening, 10, "B noticing its LISTEN connection is gone")
        assert (await a.post("/api/zones", json={"id": "z1", "name": "Tổ dân phố 1"})).status_code == 201
        assert (await a.post("/api/nodes", json={"id": "k1", "zones": ["z1"]})).status_code == 201
        await wait_for(lambda: sv_c.presence.knows("k1"), 10, "C (listening) knowing k1")
        assert not sv_b.presence.knows("k1")  # B heard nothing: its listener waits 8 s to reconnect
        await wait_for(lambda: sv_b.presence.knows("k1"), 30, "B knowing k1 after reconnecting")
        assert listener.listening and listener.connects == 2 and listener.pid != pid
        assert sv_b.feed.stats["from_poll"] == 1  # caught up from the change log, not notified
        assert (await b.get("/api/nodes/k1")).status_code == 200
        health = (await b.get("/api/health")).json()["feed"]
        assert health["listening"] and health["losses"] == 1 and health["connects"] == 2
        metrics = (await b.get("/metrics", auth=None)).text.splitlines()
        assert {"loaphuong_feed_listening 1", 'loaphuong_feed_changes_total{via="poll"} 1',
                "loaphuong_feed_listen_losses_total 1"} <= set(metrics), metrics
        assert (await a.post("/api/nodes", json={"id": "k2", "zones": ["z1"]})).status_code == 201
        await wait_for(lambda: sv_b.presence.knows("k2"), 10, "B knowing k2, notified again")
        assert sv_b.feed.stats["from_poll"] == 1


async def test_a_schedule_made_on_the_standby_reaches_the_leader_at_once(
        tmp_path: Path, pg_url: str, mosquitto: BrokerProcess) -> None:
    def slow_reconcile(s: Settings) -> Settings:  # the leader's own look at the rows: once a minute
        return s.model_copy(update={"schedule": s.schedule.model_copy(update={"reconcile_s": 60.0})})

    async with peers(tmp_path, pg_url, mosquitto.port, n=2, tweak=slow_reconcile) as cluster:
        await wait_for(lambda: any(sv.schedules.leading for sv, _ in cluster), 20, "a leader")
        (leader, _), (_, standby) = sorted(cluster, key=lambda c: not c[0].schedules.leading)
        await provision(standby, {"z1": ["sc-1"]})
        b_id = (await bulletin(standby, "Lịch phát thử"))["id"]
        r = await standby.post("/api/schedules", json={"bulletin_id": b_id, "target": {"zones": ["z1"]},
                                                       "when": {"kind": "daily", "times": ["06:00"]}})
        assert r.status_code == 201, r.text
        sid = int(r.json()["id"])
        runner = leader.schedules
        assert isinstance(runner, ScheduleService)
        await wait_for(lambda: runner.sched.get_job(job_id(sid)) is not None, 5,
                       "the leader's job for the schedule made on the standby (reconcile_s is 60 s)")
