"""Item of docs/protocol.md §3 *emergency: the attention tone*: the manifest of an emergency is
its alarm; the unit sounds the tone its config keeps, once per broadcast, and says so in the ack."""

from __future__ import annotations

import base64
import hashlib
import json

from devices.conformance.audio import silent_mp3
from devices.conformance.context import Context, Item, clip
from devices.conformance.harness import Bcast
from devices.conformance.report import Result
from devices.messages import now_ms


def tone() -> dict[str, object]:
    """A 1 s attention tone (a silent MP3 of ~4 KB: under MAX_TONE_BYTES and 3 s)."""
    audio, ms = silent_mp3(1000)
    return {"sha256": hashlib.sha256(audio).hexdigest(), "codec": "mp3", "duration_ms": ms,
            "data": base64.b64encode(audio).decode()}


async def _first_ack(ctx: Context, b: Bcast) -> dict[str, object] | None:
    got = await ctx.h.wait(lambda: ctx.h.acks(b.bc))
    return got[0] if got else None


async def emergency(ctx: Context, r: Result) -> None:
    """Tone kept from the config: `sounded` on the first ack, not again on re-delivery; the
    emergency then plays as any broadcast; without a tone `missing`; a tone failing its SHA-256
    `mismatch`."""
    h = ctx.h
    await h.config([h.group], volume=ctx.volume, attention=tone())
    await h.quiet(1.0)  # the unit decodes and keeps the tone (no message says it is done)
    b = h.make_bcast(priority="emergency")
    ctx.offered.append(b)
    await h.offer(b)
    first = await _first_ack(ctx, b)
    await h.wait(lambda: "verified" in h.states(b.bc))
    before = len(h.acks(b.bc))
    await h.offer(b)  # the manifest again (as after a reconnect): no second tone
    await h.wait(lambda: len(h.acks(b.bc)) > before)
    again = h.acks(b.bc)[before:]
    _, resp = await h.call("play", {"bc": b.bc, "at": now_ms() + 500, "offset_ms": 0})
    played = await h.wait(lambda: "played" in h.states(b.bc), within=h.timeout_s + b.duration_ms / 1000)
    await h.config([h.group], volume=ctx.volume)  # no tone now
    await h.quiet(1.0)
    bare = h.make_bcast(priority="emergency")
    ctx.offered.append(bare)
    await h.offer(bare)
    missing = await _first_ack(ctx, bare)
    await h.config([h.group], volume=ctx.volume, attention=tone() | {"sha256": "0" * 64})  # a bad copy
    await h.quiet(1.0)
    worn = h.make_bcast(priority="emergency")
    ctx.offered.append(worn)
    await h.offer(worn)
    mismatch = await _first_ack(ctx, worn)
    await h.config([h.group], volume=ctx.volume)
    r.note(f"with a tone: first ack {clip(json.dumps(first))}; manifest again: {clip(json.dumps(again))}")
    r.note(f"play: {clip(json.dumps(resp))}; acks {h.states(b.bc)}")
    r.note(f"without a tone: first ack {clip(json.dumps(missing))}")
    r.note(f"a tone that fails its SHA-256: first ack {clip(json.dumps(mismatch))}")
    if not first or first.get("attention") != "sounded":
        r.failed("the first ack of an emergency does not say attention: sounded")
    elif any(a.get("attention") == "sounded" for a in again):
        r.failed("the tone sounded again for the same broadcast")
    elif not played:
        r.failed("the emergency was not played")
    elif not missing or missing.get("attention") != "missing":
        r.failed("with no tone in the config, the ack does not say attention: missing")
    elif not mismatch or mismatch.get("attention") != "mismatch":
        r.failed("a kept tone that fails its SHA-256 is not reported attention: mismatch")
    else:
        r.passed()


async def _verify(ctx: Context, b: Bcast) -> bool:
    ctx.offered.append(b)
    await ctx.h.offer(b)
    return bool(await ctx.h.wait(lambda: "verified" in ctx.h.states(b.bc)))


async def preemption(ctx: Context, r: Result) -> None:
    """An emergency whose instant comes while a normal broadcast plays stops it (failed/preempted)."""
    h = ctx.h
    normal = h.make_bcast(duration_ms=60_000, chunk_size=16384)
    urgent = h.make_bcast(priority="emergency")
    if not (await _verify(ctx, normal) and await _verify(ctx, urgent)):
        r.not_tested(f"not verified: {normal.bc} {h.states(normal.bc)}, {urgent.bc} {h.states(urgent.bc)}")
        return
    await h.call("play", {"bc": normal.bc, "at": now_ms() + 300, "offset_ms": 0})
    if not await h.wait(lambda: "playing" in h.states(normal.bc)):
        r.not_tested(f"the normal broadcast did not start: {h.states(normal.bc)}")
        return
    _, resp = await h.call("play", {"bc": urgent.bc, "at": now_ms() + 300, "offset_ms": 0})
    done = await h.wait(lambda: "played" in h.states(urgent.bc) and "failed" in h.states(normal.bc),
                        within=h.timeout_s + urgent.duration_ms / 1000)
    ended = [a for a in h.acks(normal.bc) if a.get("state") == "failed"]
    r.note(f"normal {normal.bc} (60 s) playing, then play of emergency {urgent.bc}: {clip(json.dumps(resp))}")
    r.note(f"acks: normal {h.states(normal.bc)}, emergency {h.states(urgent.bc)}")
    if not done:
        r.failed("the emergency did not stop the normal broadcast and play")
    elif ended[0].get("reason") != "preempted":
        r.failed(f"the normal broadcast ended failed/{ended[0].get('reason')}, expected preempted")
    else:
        r.passed()


ITEMS: list[Item] = [
    ("emergency", "§3 emergency: the attention tone", "the tone on an emergency's manifest, once", emergency),
    ("preemption", "§3 playback order", "an emergency stops what plays (failed/preempted)", preemption),
]
