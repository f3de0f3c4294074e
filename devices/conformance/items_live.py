"""Item of docs/protocol.md §6a *Live audio*: ``live_start`` opens a session, the unit plays its
frames (telemetry ``source: live``), a stray session's frames and a bad frame are ignored, the
frame flagged last ends it on its own (telemetry back from ``live``), ``live_stop`` ends a session,
and a session staff stopped is not restarted by a repeated ``live_start`` (``ended: stopped``)."""

from __future__ import annotations

import asyncio
import json
import time

from devices.conformance.context import Context, Item, child_lacks, clip
from devices.conformance.report import Result
from devices.framing import pack_live_frame
from devices.messages import now_ms

FRAME_MS = 40
RATE = 16000
SILENCE = bytes(RATE * FRAME_MS // 1000 * 2)


async def _frames(ctx: Context, session: str, count: int, *, last: bool) -> None:
    """``count`` frames of silence at their real pace (QoS 0), the final one flagged last if ``last``."""
    h = ctx.h
    topic = h.t.live(h.scope(), session)
    start = time.monotonic()
    for seq in range(count):
        await h.publish(topic, pack_live_frame(seq, now_ms(), SILENCE, last=last and seq == count - 1), qos=0)
        if seq == 2:
            await h.publish(h.t.live(h.scope(), session + "x"), pack_live_frame(0, now_ms(), SILENCE), qos=0)
            await h.publish(topic, b"LPL\x01\x00garbage", qos=0)  # a bad frame: dropped, counted
        await asyncio.sleep(max(0.0, start + (seq + 1) * FRAME_MS / 1000 - time.monotonic()))


async def live(ctx: Context, r: Result) -> None:
    h = ctx.h
    if ctx.gateway:
        await child_lacks(ctx, r, "live_start", {"session": h.new_id("live"), "sample_rate": RATE,
                                                 "frame_ms": FRAME_MS})
        return
    first, second = h.new_id("live"), h.new_id("live")
    start = time.monotonic()
    _, resp = await h.call("live_start", {"session": first, "sample_rate": RATE, "frame_ms": FRAME_MS})
    sender = asyncio.create_task(_frames(ctx, first, 40, last=True))  # 1.6 s, then the last frame
    on = await h.wait(lambda: h.objs("telemetry", start, source="live", playing=first))
    await sender
    ended_at = time.monotonic()
    off = await h.wait(lambda: [t for t in h.objs("telemetry", ended_at) if t.get("source") != "live"])
    _, resp2 = await h.call("live_start", {"session": second, "sample_rate": RATE, "frame_ms": FRAME_MS})
    sender = asyncio.create_task(_frames(ctx, second, 100, last=False))
    on2 = await h.wait(lambda: h.objs("telemetry", ended_at, source="live", playing=second))
    _, stopped = await h.call("live_stop", {"session": second, "reason": "stopped"})
    sender.cancel()
    _, again = await h.call("live_start", {"session": second, "sample_rate": RATE, "frame_ms": FRAME_MS})
    alive = await h.alive()
    r.note(f"live_start: {clip(json.dumps(resp))}; telemetry live: {bool(on)}; after the last frame "
           f"not live: {bool(off)}")
    r.note(f"second session live: {bool(on2)}; live_stop: {clip(json.dumps(stopped))}; "
           f"live_start again: {clip(json.dumps(again))}; a ping after: {bool(alive)}")
    if not resp or resp.get("data") != {"live": first}:
        r.failed("live_start not answered {live: session}")
    elif not on:
        r.failed("no telemetry source: live, playing: <session> while its frames played")
    elif not off:
        r.failed("the frame flagged last did not end the session (telemetry still live)")
    elif not resp2 or not on2 or not stopped or (stopped.get("data") or {}).get("stopped") != second:
        r.failed("live_stop did not end the second session ({stopped: session})")
    elif not again or again.get("status") != "error" or "ended" not in str(again.get("error", "")):
        r.failed("a live_start of a session staff stopped was not answered error `ended: stopped`")
    elif not alive:
        r.failed("the unit no longer answers after the stray and bad frames")
    else:
        r.passed()


ITEMS: list[Item] = [
    ("live", "§6a Live audio", "live_start, live frames, live_stop", live),
]
