"""Issue 13, the attack of the finding: ``POST /api/broadcasts`` while PostgreSQL is black-holed
(tests/faults/tcp_cut.py) times out for the client (503 from the request deadline); the client
retries with the same ``Idempotency-Key`` after the database is back. Afterwards exactly one
broadcast exists, every unit played it exactly once (the simulator's play log), and one more retry
gets the same answer."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from controller.api.idempotent import _RUNNING, REPLAYED
from controller.core.web_settings import HttpSettings
from devices.broker import BrokerProcess
from firmware_sim.playlog import PlayLog, read_play_log, starts
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import bulletin, sim, states, wait_broadcast, wait_for
from tests.faults.helpers import get_ok, provision, wait_online
from tests.faults.tcp_cut import tcp_cut

pytestmark = [pytest.mark.postgres, pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]

DEADLINE_S = 10.0  # the black-holed POST is answered 503 at this deadline
UNITS = ["idem-1", "idem-2", "idem-3"]


async def retry_until_answered(client: httpx.AsyncClient, body: dict[str, object],
                               key: str) -> httpx.Response:
    """Retry as a phone app would: same key, until the controller answers something else than 503."""
    answered: list[httpx.Response] = []

    async def once() -> bool:
        r = await client.post("/api/broadcasts", json=body, headers={"Idempotency-Key": key})
        answered.append(r)
        return r.status_code != 503

    await wait_for(once, 60, "an answer other than 503", every=0.5)
    return answered[-1]


async def test_a_post_timed_out_in_a_black_hole_retried_with_its_key_airs_once(
        mosquitto: BrokerProcess, tmp_path: Path, pg_url: str) -> None:
    log_path = tmp_path / "plays.jsonl"
    log = PlayLog(log_path)
    with tcp_cut("127.0.0.1", 5432) as proxy:
        settings = make_settings(tmp_path, mosquitto.port)
        settings.database_url = pg_url.replace(":5432/", f":{proxy.port}/")
        settings.http = HttpSettings(request_deadline_s=DEADLINE_S)  # type: ignore[call-arg]
        async with running_controller(settings) as (_, client):
            await provision(client, {"z": UNITS})
            nodes = [sim(n, mosquitto.port, play_log=log) for n in UNITS]
            for n in nodes:
                await n.start()
            try:
                await wait_online(client, UNITS, 60)
                b = await bulletin(client)
                body: dict[str, object] = {"bulletin_id": b["id"], "target": {"zones": ["z"]}}
                key = str(uuid.uuid4())

                proxy.black_hole()  # the database stops answering mid-flight
                timed_out = await client.post("/api/broadcasts", json=body, headers={"Idempotency-Key": key})
                assert timed_out.status_code == 503, timed_out.text  # the deadline answered
                assert timed_out.headers["retry-after"]
                proxy.restore()

                first = await retry_until_answered(client, body, key)
                assert first.status_code == 201, first.text
                bid = first.json()["id"]
                bc = await wait_broadcast(client, bid, 120)
                assert states(bc) == dict.fromkeys(UNITS, "played")
                # the request that timed out has ended too: it made nothing of its own
                await wait_for(lambda: not _RUNNING, 60, "every POST's work to end")
                again = await retry_until_answered(client, body, key)  # a keyed retry is always safe
                assert again.status_code == 201 and again.headers[REPLAYED] == "true"
                assert again.json()["id"] == bid
                listed = (await get_ok(client, "/api/broadcasts")).json()
                assert [x["id"] for x in listed] == [bid]  # exactly one broadcast exists
                other = {**body, "repeat": 2}  # the same key for another request: refused, nothing made
                refused = await retry_until_answered(client, other, key)
                assert refused.status_code == 422 and "different request" in refused.text
            finally:
                for n in nodes:
                    await n.stop()
                log.close()
    events = read_play_log(log_path)
    assert {unit: starts(events)[(unit, bid)] for unit in UNITS} == dict.fromkeys(UNITS, 1)  # aired once
    assert {e.bc for e in events} == {bid}
