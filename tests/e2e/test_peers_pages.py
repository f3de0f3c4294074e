"""Pages from any controller (issue 16 part 1): the dashboard of controller B lists, under "Đang
phát", a relay that controller A runs and a live session another controller has on air, with
their zones by name and how many units play them (from the units' own telemetry, which B
receives too); a relay whose owner stopped beating is not listed.

Two controllers on one PostgreSQL database and one Mosquitto, two simulated units, a local radio."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from controller.live.models import LiveLog
from controller.relays.models import RelayOwner
from devices.broker import BrokerProcess
from tests.conftest import ADMIN
from tests.e2e.helpers import allowing, provision, sim, wait_for, wait_online
from tests.e2e.test_peers import peers
from tests.firmware_sim.test_relay import Radio

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.timeout(180)]


def now_playing(page: str) -> str:
    m = re.search(r'<section id="now-playing">(.*?)</section>', page, re.S)
    assert m, "the dashboard has its now-playing section"
    return m.group(1)


async def _page(api: httpx.AsyncClient) -> str:
    r = await api.get("/", headers={"accept": "text/html"}, auth=None)  # the session cookie
    assert r.status_code == 200, r.text[:300]
    return now_playing(r.text)


async def test_b_lists_what_a_has_on_air(tmp_path: Path, pg_url: str, mosquitto: BrokerProcess,
                                         radio: Radio) -> None:
    async with peers(tmp_path, pg_url, mosquitto.port, n=2,
                     tweak=lambda s: allowing(s, radio.base)) as [(sv_a, a), (sv_b, b)]:
        r = await b.post("/api/login", json={"username": ADMIN[0], "password": ADMIN[1]}, auth=None)
        assert r.status_code == 200, r.text  # B's page is opened in a browser logged in on B
        await provision(a, {"z1": ["pp-1", "pp-2"]})
        nodes = [sim(n, mosquitto.port, telemetry_s=60) for n in ("pp-1", "pp-2")]
        await asyncio.gather(*(n.start() for n in nodes))
        try:
            await wait_online(b, ["pp-1", "pp-2"])
            assert "Không có" in await _page(b)
            r = await a.post("/api/relays", json={"url": f"{radio.base}/live.mp3",
                                                  "target": {"zones": ["z1"]}})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            await wait_for(lambda: all(n.relay.state == "playing" for n in nodes), 20, "units relaying")

            async def listed() -> bool:
                return "2/2 cụm loa đang phát" in await _page(b)

            await wait_for(listed, 20, "A's relay on B's dashboard with both units", every=0.3)
            now = await _page(b)
            assert f"Tiếp sóng: {radio.base}/live.mp3" in now and "Tổ dân phố z1" in now
            assert sv_b.relays.session(rid) is None  # B runs nothing: it read A's row

            # a live session on air at a third controller (its row), units playing it by their telemetry
            with Session(sv_a.db.engine) as s:
                s.add(LiveLog(id="lv-elsewhere", user="chutich", target={"zones": ["z1"]},
                              nodes=["pp-1", "pp-2"], state="live"))
                s.commit()
            assert "chutich" not in await _page(b)  # no unit plays it: not listed
            sv_b.presence.confirmed("pp-1", {"source": "live", "playing": "lv-elsewhere"})
            now = await _page(b)
            assert "Phát trực tiếp: chutich" in now and "1/2 cụm loa đang phát" in now

            for sv in (sv_a, sv_b):  # A's lease lapses (as if A died), and B does not take it over yet
                assert sv.relays.custody is not None
                await sv.relays.custody.stop(release=False)
            with Session(sv_a.db.engine) as s:  # B stops listing it
                lease = s.get(RelayOwner, rid)
                assert lease is not None
                lease.expires_at = 0
                s.add(lease)
                s.commit()
            now = await _page(b)
            assert "Tiếp sóng" not in now and "Phát trực tiếp: chutich" in now
        finally:
            for n in nodes:
                await n.stop()
