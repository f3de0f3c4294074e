"""SSRF through relay URLs (issue 11 item 9), performed for real.

The ward runs as ``loaphuong mqtt-config`` configures it (real Mosquitto, the real app over
real HTTP, a simulated unit with its own account). An "internal service" — an HTTP server on
127.0.0.1, an address that is not public — counts every request it receives. An operator (here
the admin) tries to make the controller, or the units, fetch it: directly in every spelling of
the address (relays, relay schedules, the bare ``play_stream`` command), through an allow-listed
station's redirects and HLS variants and segments, and by changing DNS between the relay's
creation and its start. Every attempt is refused (422 at
creation, or the relay ends with the generic reason), the internal service receives no request,
no unit is told ``play_stream``, the refusal reads the same whether the port is open, closed,
silent or the name does not resolve — and the legitimate, allow-listed station still relays.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.core.netguard import UNREACHABLE
from controller.relays.pull import REFUSED
from firmware_sim.node import SimNode
from tests.e2e.helpers import allowing, wait_for, wait_online
from tests.security._broker_fixtures import Ward, controller, secure_ward
from tests.security._ssrf_fixtures import Resolver, Site, closed_port, playlist, redirect, silent_port

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

Z = {"zones": ["z"]}
DAILY = {"kind": "daily", "times": ["06:00"]}


@dataclass
class Scene:
    ward: Ward
    unit: SimNode
    internal: Site
    station: Site
    play_streams: list[dict[str, Any]]  # every play_stream the controller published

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, str]:
        r = await self.ward.api.post(path, json=body)
        return r.status_code, str(r.json().get("detail", "")) if r.status_code >= 400 else r.text

    async def relay(self, rid: str) -> dict[str, Any]:
        return dict((await self.ward.api.get(f"/api/relays/{rid}")).json())

    def nothing_reached_inside(self) -> None:
        assert self.internal.hits == [], f"the internal service was fetched: {self.internal.hits}"
        assert self.play_streams == [], f"a unit was told to fetch: {self.play_streams}"
        assert self.unit.relay.state == "" and not self.unit.relay.url


def spy_play_streams(ward: Ward) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    link = ward.link
    real = link.publish_nowait

    def publish(topic: str, body: bytes, **kw: Any) -> Any:
        if b'"play_stream"' in body:  # a command (live frames are binary)
            sent.append(json.loads(body))
        return real(topic, body, **kw)

    link.publish_nowait = publish
    return sent


@asynccontextmanager
async def scene(tmp_path: Path, internal: Site, station: Site, *allowed: str) -> AsyncIterator[Scene]:
    """The ward with unit sf-1 in zone z; the controller allows ``station`` (and ``allowed``)."""
    async with secure_ward(tmp_path, {"z": ["sf-1"]}) as ward:
        ward.settings = allowing(ward.settings, station.base, *allowed)
        async with controller(ward):
            unit = await ward.unit("sf-1")
            await wait_online(ward.api, ["sf-1"])
            yield Scene(ward, unit, internal, station, spy_play_streams(ward))


async def legit_relay_still_works(sc: Scene) -> None:
    """The allow-listed station relays to the unit (node_fetch) and stops on request."""
    code, text = await sc.post("/api/relays", {"url": f"{sc.station.base}/live.mp3", "target": Z})
    assert code == 201, text
    rid = json.loads(text)["id"]
    await wait_for(lambda: sc.unit.relay.state == "playing", 15, "the unit relays the allowed station")
    assert [m["args"]["url"] for m in sc.play_streams] == [f"{sc.station.base}/live.mp3"]
    assert (await sc.ward.api.delete(f"/api/relays/{rid}")).status_code == 200
    await wait_for(lambda: sc.unit.relay.state == "", 10, "the unit stops")


def spellings(p: int, closed: int, station: Site) -> list[str]:
    """Internal addresses (``p``: the internal service's port) in every spelling, and names."""
    return [
        f"127.0.0.1:{p}", f"0x7f000001:{p}", f"0X7F000001:{p}", f"2130706433:{p}", f"017700000001:{p}",
        f"0177.0.0.1:{p}", f"127.1:{p}", f"127.0.1:{p}", f"[::ffff:127.0.0.1]:{p}", f"[::ffff:7f00:1]:{p}",
        f"[::1]:{p}", f"localhost:{p}", f"LOCALHOST.:{p}", f"0.0.0.0:{p}", f"0:{p}", f"[::]:{p}",
        "169.254.169.254", "[fe80::1]", "100.64.0.1", "224.0.0.1", "10.0.0.1", "192.168.1.1",
        "172.16.0.1", "[fc00::1]", "[64:ff9b::7f00:1]", f"intranet.ward.test:{p}", f"mixed.ward.test:{p}",
        f"v6.ward.test:{p}", f"gone.ward.test:{p}", f"127.0.0.1:{closed}", f"u:p@127.0.0.1:{p}",
        f"127.0.0.1:{p}\\@{station.base[7:]}"]


async def test_internal_addresses_are_refused_in_every_spelling(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    dns = Resolver(monkeypatch)
    dns.answers.update({"intranet.ward.test": ["10.20.30.40"], "mixed.ward.test": ["14.225.0.1", "127.0.0.1"],
                        "v6.ward.test": ["::1"], "gone.ward.test": []})
    dead, closed = closed_port(), closed_port()  # dead: allow-listed; closed: not
    with Site() as internal, Site() as station, silent_port() as silent:
        # two allow-listed origins that cannot be reached: one refuses, one never answers
        async with scene(tmp_path, internal, station, f"http://127.0.0.1:{dead}",
                         f"http://127.0.0.1:{silent}") as sc:
            p = internal.port
            hosts = spellings(p, closed, station)
            later = (datetime.now(tz=UTC) + timedelta(hours=1)).isoformat()
            details: dict[str, str] = {}
            for host in hosts:
                url = f"http://{host}/radio.mp3"
                for what, path, body in [
                    ("node_fetch", "/api/relays", {"url": url, "target": Z}),
                    ("republish", "/api/relays", {"url": url, "mode": "republish", "target": Z}),
                    ("at a time", "/api/relays", {"url": url, "target": Z, "start_at": later}),
                    ("schedule", "/api/schedules", {"relay": {"url": url, "duration_s": 60}, "target": Z,
                                                    "when": DAILY}),
                ]:
                    code, detail = await sc.post(path, body)
                    assert code == 422, (host, what, code, detail)
                    details[f"{host} {what}"] = detail
            # the bare command too: a unit told play_stream fetches the URL itself
            bare = {"name": "play_stream", "args": {"url": f"http://0x7f000001:{p}/x.mp3"}, "timeout_s": 2}
            for path in ("/api/nodes/sf-1/commands", "/api/zones/z/commands", "/api/zones/all/commands"):
                code, detail = await sc.post(path, bare)
                assert code == 422, (path, code, detail)
                details[path] = detail
            # allow-listed but unreachable (refused / silent): the same text, after trying
            for port in (dead, silent):
                code, detail = await sc.post("/api/relays", {"url": f"http://127.0.0.1:{port}/radio.mp3",
                                                             "mode": "republish", "target": Z})
                assert code == 422
                details[f"allowed {port}"] = detail
            # no port scanner: open, closed, silent, no DNS answer, blocked — one text
            assert details[f"127.0.0.1:{p} republish"] == details[f"127.0.0.1:{closed} republish"]
            assert len(set(details.values())) == 1, set(details.values())
            assert UNREACHABLE in next(iter(details.values()))
            assert str(p) not in next(iter(details.values()))

            # a relay schedule cannot be changed to point inside either; it keeps its URL
            code, text = await sc.post("/api/schedules", {"relay": {"url": f"{station.base}/live.mp3",
                                                                    "duration_s": 60}, "target": Z,
                                                          "when": DAILY})
            assert code == 201, text
            sid = json.loads(text)["id"]
            r = await sc.ward.api.patch(f"/api/schedules/{sid}", json={
                "relay": {"url": f"http://0x7f000001:{p}/x.mp3", "duration_s": 60}})
            assert r.status_code == 422 and r.json()["detail"] == details[f"127.0.0.1:{p} node_fetch"]
            got = (await sc.ward.api.get(f"/api/schedules/{sid}")).json()
            assert got["relay"]["url"] == f"{station.base}/live.mp3" and got["version"] == 1

            assert (await sc.ward.api.get("/api/relays")).json() == []  # nothing was created
            sc.nothing_reached_inside()
            await legit_relay_still_works(sc)
            assert internal.hits == []


async def test_an_allowed_station_cannot_lead_the_controller_inside(tmp_path: Path) -> None:
    """Redirects, HLS variants and segments are checked on every hop: the allow-list names the
    station's origin, not wherever it points."""
    with Site() as internal, Site() as station:
        inside = internal.base
        station.routes.update({
            "/hop.mp3": redirect(f"{inside}/radio.mp3"),
            "/hop-hex.mp3": redirect(f"http://0x7f000001:{internal.port}/radio.mp3"),
            "/hop-name.mp3": redirect(f"http://localhost:{internal.port}/radio.mp3"),
            "/two-hops.mp3": redirect(f"{station.base}/hop.mp3"),
            "/master.m3u8": playlist(f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=64000\n{inside}/media.m3u8\n"),
            "/media.m3u8": playlist(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{inside}/seg0.ts\n"
                                    "#EXT-X-ENDLIST\n"),
            "/init.m3u8": playlist(f'#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI="{inside}/init.mp4"\n'
                                   "#EXTINF:1.0,\nseg-ok.ts\n#EXT-X-ENDLIST\n"),
            # the first segment is fine (the probe passes); the second points inside
            "/later.m3u8": playlist(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nseg-ok.ts\n"
                                    f"#EXTINF:1.0,\n{inside}/seg1.ts\n#EXT-X-ENDLIST\n"),
        })
        async with scene(tmp_path, internal, station) as sc:
            for path in ("/hop.mp3", "/hop-hex.mp3", "/hop-name.mp3", "/two-hops.mp3", "/master.m3u8",
                         "/media.m3u8"):
                code, detail = await sc.post("/api/relays", {"url": station.base + path, "mode": "republish",
                                                             "target": Z})
                assert (code, detail.split(" (")[0]) == (422, UNREACHABLE), (path, code, detail)
            assert internal.hits == []

            # the probe saw a good first segment; the relay ends at the one (or the init) that points inside
            for path in ("/later.m3u8", "/init.m3u8"):
                code, text = await sc.post("/api/relays", {"url": station.base + path, "mode": "republish",
                                                           "target": Z})
                assert code == 201, text
                rid = json.loads(text)["id"]
                await wait_for(lambda rid=rid: _ended(sc, rid), 20, f"{path}: the relay ends inside")
                assert (await sc.relay(rid))["reason"] == REFUSED, path

            # a relay at a set time is not probed when made: refused when it starts
            soon = (datetime.now(tz=UTC) + timedelta(seconds=3)).isoformat()  # in the future when made
            code, text = await sc.post("/api/relays", {"url": f"{station.base}/two-hops.mp3",
                                                       "mode": "republish", "target": Z, "start_at": soon})
            assert code == 201, text
            rid = json.loads(text)["id"]
            await wait_for(lambda: _ended(sc, rid), 20, "the relay is refused when it starts")
            got = await sc.relay(rid)
            assert got["reason"] == REFUSED and got["bytes_in"] == 0, got
            assert "/hop.mp3" in station.hits  # it did follow the station's own hop
            sc.nothing_reached_inside()
            await legit_relay_still_works(sc)
            assert internal.hits == []


async def test_dns_changed_after_creation_is_caught_when_the_relay_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The name was public when the relay (or schedule) was made; when it starts it resolves to
    127.0.0.1: the relay ends refused, no unit is told, nothing is fetched."""
    dns = Resolver(monkeypatch)
    with Site() as internal, Site() as station:
        url = f"http://radio.ward.test:{internal.port}/live.mp3"
        dns.answers["radio.ward.test"] = ["14.225.0.1"]  # public; never connected to (checked only)
        async with scene(tmp_path, internal, station) as sc:
            soon = datetime.now(tz=UTC) + timedelta(seconds=6)  # room for three POSTs on a busy machine
            made = []
            for mode in ("node_fetch", "republish"):
                code, text = await sc.post("/api/relays", {"url": url, "mode": mode, "target": Z,
                                                           "start_at": soon.isoformat(), "duration_s": 60})
                assert code == 201, text
                made.append(json.loads(text)["id"])
            at = (soon + timedelta(seconds=1)).replace(microsecond=0)
            once = {"kind": "once", "at": at.isoformat()}
            body = {"relay": {"url": url, "duration_s": 60}, "target": Z, "when": once}
            code, text = await sc.post("/api/schedules", body)
            assert code == 201, text
            sid = json.loads(text)["id"]
            dns.answers["radio.ward.test"] = ["127.0.0.1"]  # rebinding: now it points inside
            assert datetime.now(tz=UTC) < soon, "the relays started before DNS changed: nothing tested"

            async def fired() -> list[str]:
                rows = (await sc.ward.api.get("/api/relays")).json()
                return [r["id"] for r in rows if r["schedule_id"] == sid]

            await wait_for(fired, 20, "the schedule fired its relay")
            made += await fired()
            for rid in made:
                await wait_for(lambda rid=rid: _ended(sc, rid), 20, f"relay {rid} refused when it starts")
                assert (await sc.relay(rid))["reason"] == REFUSED, rid
            assert dns.asked.count("radio.ward.test") >= 4  # checked at creation and again at start
            sc.nothing_reached_inside()
            await legit_relay_still_works(sc)
            assert internal.hits == []


async def _ended(sc: Scene, rid: str) -> bool:
    return (await sc.relay(rid))["state"] == "ended"
