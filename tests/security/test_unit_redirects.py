"""Issue 11 leftover of item 9, performed for real: a node_fetch unit follows redirects itself, so
an allow-listed station could lead the unit into the unit's own LAN.

Mosquitto runs the generated configuration, the controller serves over real HTTP and allow-lists
a local station (127.0.0.1, not public); the simulated unit logs in with its own account and
fetches for itself. The station redirects to an "internal service" on another local port (as
written, in hex, by name, after a hop of its own) and lists HLS segments and variants there.
The internal service counts every request: it must receive none; the unit reports ``relay:
refused`` in its telemetry (the relay's ``units_refused``); and a redirect within the station's
own origin is still followed (the unit plays).
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.broker import free_port
from devices.netguard import IP, unit_fetch_refusal
from firmware_sim.node import SimNode
from tests.conftest import ADMIN, make_settings, running_controller
from tests.e2e.helpers import allowing, wait_for
from tests.e2e.serve import serving
from tests.security._ssrf_fixtures import Site, playlist, redirect
from tests.security.ward import add_units, generated_broker, ok, on_broker, units_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

Z = {"zones": ["z"]}


@asynccontextmanager
async def relaying_ward(tmp_path: Path, station: str) -> AsyncIterator[tuple[httpx.AsyncClient, SimNode]]:
    """Unit rd-1 in zone z online on the generated broker; the controller allow-lists ``station``."""
    settings = allowing(make_settings(tmp_path, free_port()), station)
    async with running_controller(settings) as (_, api):
        passwords = await add_units(api, {"z": ["rd-1"]})
    with generated_broker(tmp_path) as broker:
        async with serving(on_broker(settings, broker)) as (_, addr), \
                units_online(f"http://{addr}", broker.port, passwords) as units, \
                httpx.AsyncClient(base_url=f"http://{addr}", auth=ADMIN, timeout=30) as api:
            yield api, units["rd-1"]


async def relay(api: httpx.AsyncClient, url: str) -> str:
    return str(ok(await api.post("/api/relays", json={"url": url, "target": Z}))["id"])


async def shown(api: httpx.AsyncClient, rid: str, field: str) -> bool:
    got: dict[str, Any] = (await api.get(f"/api/relays/{rid}")).json()
    value = got.get(field)
    return value == {"rd-1": "unsafe_redirect"} if field == "units_refused" else value == ["rd-1"]


async def refused(api: httpx.AsyncClient, unit: SimNode, url: str) -> None:
    """A relay of ``url``: the unit refuses where the station leads it, the controller shows it."""
    before = unit.relay.refused
    rid = await relay(api, url)
    await wait_for(lambda: unit.relay.refused > before, 10, f"{url}: the unit refusing")
    await wait_for(lambda: shown(api, rid, "units_refused"), 10, f"{url}: the controller showing the refusal")
    assert unit.relay.state == "refused", unit.relay.state
    assert "not the station the controller sent" in unit.relay.last_error, unit.relay.last_error
    ok(await api.delete(f"/api/relays/{rid}"), 200)
    await wait_for(lambda: unit.relay.state == "", 10, f"{url}: the unit stopping")


async def test_a_station_cannot_redirect_a_unit_into_its_lan(tmp_path: Path) -> None:
    with Site() as internal, Site() as station:
        inside = internal.base
        station.routes.update({
            "/hop.mp3": redirect(f"{inside}/secret.mp3"),
            "/hop-hex.mp3": redirect(f"http://0x7f000001:{internal.port}/secret.mp3"),
            "/hop-name.mp3": redirect(f"http://localhost:{internal.port}/secret.mp3"),
            "/two-hops.mp3": redirect("/hop.mp3"),  # its own origin first, then inside
            "/seg.m3u8": playlist(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{inside}/seg0.ts\n"
                                  "#EXT-X-ENDLIST\n"),
            "/master.m3u8": playlist(f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=64000\n{inside}/media.m3u8\n"),
            "/moved.mp3": redirect("/live.mp3"),  # within the station: followed
        })
        async with relaying_ward(tmp_path, station.base) as (api, unit):
            for path in ("/hop.mp3", "/hop-hex.mp3", "/hop-name.mp3", "/two-hops.mp3", "/seg.m3u8",
                         "/master.m3u8"):
                await refused(api, unit, station.base + path)
                assert internal.hits == [], (path, internal.hits)
            assert "/hop.mp3" in station.hits  # the station's own hop was followed
            rid = await relay(api, station.base + "/moved.mp3")
            await wait_for(lambda: unit.relay.state == "playing", 10, "the unit playing the moved stream")
            await wait_for(lambda: shown(api, rid, "units_playing"), 10, "the controller showing it playing")
            assert "/live.mp3" in station.hits and internal.hits == []
            ok(await api.delete(f"/api/relays/{rid}"), 200)


def test_the_node_side_rule() -> None:
    """devices/netguard.py: the controller's origin as it is, every other origin public only."""
    sent = "http://127.0.0.1:8000/live.mp3"
    public = {"radio.example": ["203.0.114.9"]}

    def dns(host: str, port: int) -> list[IP]:
        if host not in public:
            raise OSError(f"{host} has no address")
        return [ipaddress.ip_address(a) for a in public[host]]

    assert unit_fetch_refusal(sent, sent, dns) == ""
    assert unit_fetch_refusal("http://127.0.0.1:8000/other.m3u8", sent, dns) == ""  # same origin
    assert unit_fetch_refusal("http://radio.example/seg.ts", sent, dns) == ""  # public elsewhere
    for bad in ("http://127.0.0.1:8001/x", "https://127.0.0.1:8000/x", "http://0x7f000001:8000/x",
                "http://127.1:8001/", "http://[::ffff:127.0.0.1]:8000/", "http://10.0.0.1/",
                "http://192.168.1.1/", "http://169.254.169.254/", "http://[fe80::1]/", "http://nowhere.test/",
                "http://127.0.0.1:8001\\@radio.example/", "ftp://radio.example/"):
        assert unit_fetch_refusal(bad, sent, dns), bad
