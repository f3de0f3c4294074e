"""bench/relay.py's measuring side: what each simulated unit played (Ear) and the two relay modes
driven through the controller's HTTP API (Bench: republish with first audio and outage recovery,
node_fetch with the units' own fetch)."""

from __future__ import annotations

import argparse
import array
import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from bench.cputime import CpuWindow
from devices.broker import BrokerProcess
from devices.protocol import LIVE_HEADER

logger = logging.getLogger("bench.relay")

PASSWORD = "bench-password"
AUTH = ("admin", PASSWORD)
ZONE = "z"
LOUD_PEAK = 1500  # a frame whose peak passes this is audible tone (the tone peaks near 4000)
GAP_S = 0.5  # silence this long before audio counts as audio coming back


def pct(values: list[float], q: float) -> float | None:
    s = sorted(values)
    return round(s[min(len(s) - 1, round(q * (len(s) - 1)))], 1) if s else None


class Ear:
    """When one unit played audible audio (its live output, scanned incrementally)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.cursor = 0
        self.loud: list[float] = []

    def update(self) -> None:
        out = self.sim.live.output
        self.cursor = min(self.cursor, len(out))
        for at, _, pcm in out[self.cursor:]:
            samples = array.array("h")
            samples.frombytes(pcm[: len(pcm) & ~1])
            if samples and max(max(samples), -min(samples)) > LOUD_PEAK:
                self.loud.append(at)
        self.cursor = len(out)

    def first_after(self, t: float) -> float | None:
        return next((x for x in self.loud if x >= t), None)

    def back_after(self, t_up: float) -> float | None:
        """The first audible frame from ``t_up`` on that follows a silence of GAP_S (what a unit
        still played from its buffers when the station went off is not audio coming back)."""
        prev: float | None = None
        for x in self.loud:
            if x >= t_up and prev is not None and x - prev > GAP_S:
                return x
            prev = x
        return None


async def wait_until(pred: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(every)
    logger.warning("timed out after %.0f s waiting for %s", timeout, what)
    return False


class Bench:
    def __init__(self, args: argparse.Namespace, broker: BrokerProcess, ctl_pid: int, addr: str,
                 sims: list[Any], station: Any) -> None:
        import httpx

        self.args = args
        self.broker = broker
        self.ctl_pid = ctl_pid
        self.sims = sims
        self.ears = [Ear(s) for s in sims]
        self.seqs: list[list[int]] = [[] for _ in sims]  # live frame numbers each unit received
        for sim, seqs in zip(sims, self.seqs, strict=True):
            sim.live.on_frame = self._counting(sim.live.on_frame, seqs)
        self.station = station
        self.http = httpx.AsyncClient(base_url=f"http://{addr}", auth=AUTH, timeout=60)

    async def stats(self) -> dict[str, int]:
        r = await self.http.get("/bench/stats")
        r.raise_for_status()
        return dict(r.json())

    @staticmethod
    def _counting(on_frame: Callable[[str, bytes], None], seqs: list[int]) -> Callable[[str, bytes], None]:
        def counted(session: str, payload: bytes) -> None:
            if len(payload) >= LIVE_HEADER.size:
                seqs.append(LIVE_HEADER.unpack_from(payload)[3])
            on_frame(session, payload)

        return counted

    def units_frames(self) -> tuple[int, int]:
        st = [s.live.stats for s in self.sims]
        return sum(x.late for x in st), sum(x.lost for x in st)

    def hear(self) -> None:
        for e in self.ears:
            e.update()

    async def listen(self) -> None:
        """Scan what the units play as it comes: one long scan would stall their playout."""
        while True:
            self.hear()
            await asyncio.sleep(0.2)

    async def window(self) -> dict[str, Any]:
        """CPU, frames and egress over ``--seconds``."""
        broker_pid = self.broker.proc.pid if self.broker.proc else 0
        cpu = CpuWindow({"controller": self.ctl_pid, "broker": broker_pid})
        for seqs in self.seqs:
            seqs.clear()
        s0, u0 = await self.stats(), self.units_frames()
        cpu.start()
        await asyncio.sleep(self.args.seconds)
        used = cpu.stop()
        s1 = await self.stats()
        await asyncio.sleep(0.5)  # the frames on their way
        u1 = self.units_frames()
        # frames numbered seq0 .. seq1-1 were published in the window: which did each unit get?
        seq0, seq1 = s0["live_seq"], s1["live_seq"]
        sent = seq1 - seq0
        received = sum(len({q for q in seqs if seq0 <= q < seq1}) for seqs in self.seqs)
        expected = sent * len(self.sims)
        return {"cpu_pct": used["controller"], "broker_cpu_pct": used["broker"],
                "mqtt_egress_bytes": s1["mqtt_bytes_out"] - s0["mqtt_bytes_out"],
                "frames_sent": sent, "frames_received": received,
                "lost_pct": round(min(100.0, max(0.0, 100 * (expected - received) / expected)), 3) if expected
                else None,
                "frames_late": u1[0] - u0[0], "frames_played_as_silence": u1[1] - u0[1]}

    async def republish(self, url: str) -> dict[str, Any]:
        self.hear()
        t_post = time.monotonic()
        r = await self.http.post("/api/relays", json={"url": url, "mode": "republish",
                                                      "target": {"zones": [ZONE]}})
        r.raise_for_status()
        rid = r.json()["id"]

        def all_heard(t: float) -> bool:
            self.hear()
            return all(e.first_after(t) is not None for e in self.ears)

        first_frame: float | None = None  # the controller published its first live frame
        deadline = time.monotonic() + 60
        while not all_heard(t_post) and time.monotonic() < deadline:
            if first_frame is None and (await self.stats())["live_seq"] > 0:
                first_frame = round((time.monotonic() - t_post) * 1000, 1)
            await asyncio.sleep(0.05)
        first = [(x - t_post) * 1000 for e in self.ears if (x := e.first_after(t_post)) is not None]
        if len(first) < len(self.ears):
            logger.warning("only %d of %d units played the relay within 60 s", len(first), len(self.ears))
        logger.info("relay %s: first audio p50 %s ms; measuring %.0f s", rid, pct(first, 0.5),
                    self.args.seconds)
        out: dict[str, Any] = {"relay": rid, "units_heard": len(first), "first_frame_ms": first_frame,
                               "first_audio_ms_p50": pct(first, 0.5), "first_audio_ms_p95": pct(first, 0.95)}
        out.update(await self.window())
        out["recovery_ms_p50"] = out["recovery_ms_max"] = None
        if self.args.outage > 0:
            self.station.up.clear()
            logger.info("station off the air for %.1f s", self.args.outage)
            await asyncio.sleep(self.args.outage)
            t_up = time.monotonic()
            self.station.up.set()

            def all_back() -> bool:
                self.hear()
                return all(e.back_after(t_up) is not None for e in self.ears)

            await wait_until(all_back, 60, "every unit to play again after the outage", every=0.05)
            back = [max(0.0, (x - t_up) * 1000) for e in self.ears if (x := e.back_after(t_up)) is not None]
            out.update(units_recovered=len(back), recovery_ms_p50=pct(back, 0.5),
                       recovery_ms_max=round(max(back), 1) if back else None)
            state = (await self.http.get(f"/api/relays/{rid}")).json()
            out["controller_retries"] = state.get("retries")
            logger.info("recovered: p50 %s ms, max %s ms", out["recovery_ms_p50"], out["recovery_ms_max"])
        r = await self.http.delete(f"/api/relays/{rid}")
        r.raise_for_status()
        await wait_until(lambda: all(not s.live.active for s in self.sims), 15, "units to leave the session")
        await asyncio.sleep(1.0)
        return out

    async def node_fetch(self, url: str) -> dict[str, Any]:
        s0 = await self.stats()
        t_post = time.monotonic()
        r = await self.http.post("/api/relays", json={"url": url, "mode": "node_fetch",
                                                      "target": {"zones": [ZONE]}})
        r.raise_for_status()
        rid = r.json()["id"]
        n = len(self.sims)
        first: dict[int, float] = {}
        all_ms: float | None = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for i, s in enumerate(self.sims):
                if i not in first and s.relay.state == "playing":
                    first[i] = (time.monotonic() - t_post) * 1000
            got = (await self.http.get(f"/api/relays/{rid}")).json()
            if len(got.get("units_playing") or []) >= n:
                all_ms = round((time.monotonic() - t_post) * 1000, 1)
                break
            await asyncio.sleep(0.05)
        else:
            logger.warning("not every unit reported playing within 60 s")
        logger.info("node_fetch %s: all %d units playing after %s ms; measuring %.0f s", rid, n, all_ms,
                    self.args.seconds)
        out: dict[str, Any] = {"relay": rid, "all_playing_ms": all_ms,
                               "unit_playing_ms_p50": pct(list(first.values()), 0.5),
                               "unit_playing_ms_p95": pct(list(first.values()), 0.95)}
        w = await self.window()
        out.update(cpu_pct=w["cpu_pct"], broker_cpu_pct=w["broker_cpu_pct"],
                   mqtt_egress_bytes=w["mqtt_egress_bytes"])
        out["mqtt_egress_bytes_with_start"] = (await self.stats())["mqtt_bytes_out"] - s0["mqtt_bytes_out"]
        out["units_playing_at_end"] = sum(s.relay.state == "playing" for s in self.sims)
        r = await self.http.delete(f"/api/relays/{rid}")
        r.raise_for_status()
        await wait_until(lambda: all(s.relay.state == "" for s in self.sims), 15, "units to stop relaying")
        return out
