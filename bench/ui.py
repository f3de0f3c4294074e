"""Phone screens on a slow mobile link: bytes transferred and first render per screen.

    python bench/ui.py                  # 400 kbps down/up, 400 ms RTT (Chromium CDP emulation)
    python bench/ui.py --kbps 1600 --rtt 150

The controller runs under uvicorn on loopback (no broker: the screens do not need one) with two
zones, three units, a bulletin, a daily schedule, two dictionary entries and a broadcast; Debian's
Chromium (Playwright) at 360 × 740, cache disabled and the service worker bypassed (each screen as
a first visit), logs in, then opens each screen with the link emulated: the bytes received (CDP
``encodedDataLength``: what went over the wire, headers included), first contentful paint and
the load event. Baseline in the same run, on the same link: a one-file document (/favicon.svg),
what the round trips alone cost. Bars (issue 14): ≤ 150 KB and first render ≤ 2 s per screen.
The last line printed is one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCREENS = ["/login", "/", "/units", "/units/u1", "/zones/z1", "/compose", "/bulletins", "/schedule",
           "/calendar", "/calendar?view=month", "/relay", "/presets", "/library", "/dictionary", "/history",
           "/alerts", "/audit", "/emergency", "/accounts", "/password"]
PASSWORD = "bench-password-1"


async def serve(data_dir: Path) -> tuple[Any, Any, str]:
    import uvicorn

    from controller.app import create_app
    from controller.fleet.settings import MqttSettings
    from controller.settings import Settings
    from devices.broker import free_port

    settings = Settings(data_dir=data_dir, mqtt=MqttSettings(port=free_port()),  # type: ignore[call-arg]
                        admin_password=PASSWORD)
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.05)
    return server, task, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def provision(url: str) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=url, auth=("admin", PASSWORD), timeout=120) as c:
        for zid, nodes in {"z1": ["u1", "u2"], "z2": ["u3"]}.items():
            (await c.post("/api/zones", json={"id": zid, "name": f"Tổ dân phố {zid}"})).raise_for_status()
            for n in nodes:
                (await c.post("/api/nodes", json={"id": n, "zones": [zid]})).raise_for_status()
        b = (await c.post("/api/bulletins", json={"text": "Thông báo lịch tiêm chủng tuần sau."})).json()
        r = await c.post("/api/schedules", json={"bulletin_id": b["id"], "target": {"zones": ["z1", "z2"]},
                                                 "when": {"kind": "daily", "times": ["06:00", "17:30"]}})
        r.raise_for_status()  # the calendar shows two airings a day
        for term, spoken in (("UBND", "ủy ban nhân dân"), ("Kẻ Sặt", "kẻ sặt")):
            (await c.post("/api/speech/dictionary", json={"term": term, "spoken": spoken})).raise_for_status()
        r = await c.post("/api/broadcasts", json={"bulletin_id": b["id"], "target": {"zones": ["z1"]}})
        r.raise_for_status()
        return f"/broadcasts/{r.json()['id']}"


async def measure(page: Any, cdp: Any, url: str) -> dict[str, float]:
    got: dict[str, float] = {"bytes": 0.0}

    def finished(ev: dict[str, Any]) -> None:
        got["bytes"] += float(ev.get("encodedDataLength", 0))
    cdp.on("Network.loadingFinished", finished)
    await page.goto(url, wait_until="load", timeout=120_000)
    timing = await page.evaluate("""() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const fcp = performance.getEntriesByName('first-contentful-paint')[0];
        return {fcp: fcp ? fcp.startTime : null, load: nav ? nav.loadEventEnd : null};
    }""")
    await asyncio.sleep(0.3)  # late loadingFinished events
    cdp.remove_listener("Network.loadingFinished", finished)
    return {"kb": round(got["bytes"] / 1024, 1), "first_render_ms": round(timing["fcp"] or -1),
            "load_ms": round(timing["load"] or -1)}


async def main(kbps: float, rtt_ms: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as d:
        server, task, url = await serve(Path(d))
        try:
            delivery = await provision(url)
            async with async_playwright() as pw:
                b = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
                ctx = await b.new_context(viewport={"width": 360, "height": 740}, is_mobile=True,
                                          has_touch=True, locale="vi-VN")
                page = await ctx.new_page()
                await page.goto(url + "/login")
                await page.fill("#u", "admin")
                await page.fill("#p", PASSWORD)
                await page.click("#go")
                await page.wait_for_url(url + "/")
                cdp = await ctx.new_cdp_session(page)
                await cdp.send("Network.enable")
                await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
                # every screen as a first visit: the service worker's shell cache is not used either
                await cdp.send("Network.setBypassServiceWorker", {"bypass": True})
                rate = kbps * 1000 / 8
                await cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": rtt_ms,
                                                                    "downloadThroughput": rate,
                                                                    "uploadThroughput": rate})
                baseline = await measure(page, cdp, url + "/favicon.svg")
                screens = {}
                for path in [*SCREENS, delivery]:
                    name = "/broadcasts/…" if path == delivery else path
                    screens[name] = await measure(page, cdp, url + path)
                await b.close()
        finally:
            server.should_exit = True
            await task
    worst_kb = max(s["kb"] for s in screens.values())
    worst_fcp = max(s["first_render_ms"] for s in screens.values())
    return {"bench": "ui", "link": {"kbps": kbps, "rtt_ms": rtt_ms}, "baseline_one_file": baseline,
            "screens": screens, "max_kb": worst_kb, "max_first_render_ms": worst_fcp,
            "within_bars": worst_kb <= 150 and worst_fcp <= 2000}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kbps", type=float, default=400)
    ap.add_argument("--rtt", type=float, default=400, help="round-trip time, ms")
    args = ap.parse_args()
    out = asyncio.run(main(args.kbps, args.rtt))
    for path, s in out["screens"].items():
        print(f"{path:22} {s['kb']:7.1f} KB  first render {s['first_render_ms']:5d} ms  "
              f"load {s['load_ms']:5d} ms")
    print(json.dumps(out, ensure_ascii=False))
