"""Emergency traffic goes before anything else (controller/airing/audio_out.py), broker-free: a
link whose publishes wait until the test lets them complete shows what is queued when."""

from __future__ import annotations

import asyncio

import pytest

from controller.airing.active import ActiveBroadcast
from controller.airing.audio_out import WINDOW, AudioOut
from devices import protocol as p

pytestmark = pytest.mark.timeout(30)


class GatedLink:
    """Records each publish; each completes (its PUBACK) only when the test calls :meth:`ack_all`."""

    def __init__(self) -> None:
        self.topics = p.Topics("lp")
        self.connected = True
        self.queued: list[str] = []
        self._waiting: list[asyncio.Future[None]] = []

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self.queued.append(topic)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        await fut

    def outstanding(self) -> int:
        return sum(not f.done() for f in self._waiting)

    def ack_all(self) -> None:
        for f in self._waiting:
            if not f.done():
                f.set_result(None)


def bcast(bc: str, priority: p.Priority, chunks: int, scopes: list[str]) -> ActiveBroadcast:
    info, frames = p.chunk_audio(bytes(chunks * 1024), duration_ms=1000, chunk_size=1024)
    m = p.Manifest(bc=bc, priority=priority, audio=info, expires_at=p.now_ms() + 60_000, hold=True)
    return ActiveBroadcast(id=bc, manifest=m, frames=frames,
                           scopes=[p.AudioScope(kind="group", id=s) for s in scopes], nodes={})


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_emergency_goes_before_a_normal_broadcast_being_sent() -> None:
    link = GatedLink()
    out = AudioOut(link)  # type: ignore[arg-type]
    normal = asyncio.create_task(out.publish(bcast("b-n", p.Priority.NORMAL, 40, ["a"])))
    await settle()
    link.ack_all()  # the manifest
    await settle()
    assert link.outstanding() == WINDOW  # the normal one's chunks go a window at a time
    emergency = asyncio.create_task(out.publish(bcast("b-e", p.Priority.EMERGENCY, 3, ["a", "b", "c"])))
    await settle()
    # every zone's emergency manifest is queued now, behind at most one window of the normal chunks
    assert [t for t in link.queued if "/b-e/manifest" in t] == [
        f"lp/group/{z}/bcast/b-e/manifest" for z in ("a", "b", "c")]
    assert sum("/b-n/data" in t for t in link.queued) == WINDOW
    while not (normal.done() and emergency.done()):
        link.ack_all()
        await settle()
    second_window = [i for i, t in enumerate(link.queued) if "/b-n/data" in t][WINDOW]
    e_chunks = [i for i, t in enumerate(link.queued) if "/b-e/data" in t]
    assert len(e_chunks) == 9 and max(e_chunks) < second_window  # all its chunks before their next window
    assert sum("/b-n/data" in t for t in link.queued) == 40  # and the normal one is sent whole
