"""Items of docs/protocol.md §3: manifest and chunks, CRC and SHA-256 checks, repair, acks and
their order, `play` at an instant and *at most once*."""

from __future__ import annotations

import json
import time

from devices.conformance.audio import crc_broken, sha_broken
from devices.conformance.context import Context, Item, clip
from devices.conformance.harness import Bcast
from devices.conformance.report import Result
from devices.conformance.shape import ACK, REPAIR, problems
from devices.messages import now_ms

#: A `playing` ack arriving this long before `at` means the unit started early; this long after, late
#: (wide on purpose: the kit measures arrival, so a busy broker or machine adds its delay).
EARLY_MS, LATE_MS = 100, 10_000


def _ack_problems(ctx: Context, b: Bcast) -> list[str]:
    return [p for a in ctx.h.acks(b.bc) for p in problems(a, ACK, ctx.h.unit)]


def _offered(ctx: Context) -> Bcast:
    b = ctx.h.make_bcast()
    ctx.offered.append(b)
    return b


async def deliver(ctx: Context, r: Result) -> None:
    """Manifest + every chunk: `receiving` (have 0) then `verified`, nothing asked for."""
    h = ctx.h
    b = _offered(ctx)
    await h.offer(b)
    done = await h.wait(lambda: {"verified", "failed"} & set(h.states(b.bc)))
    acks = h.acks(b.bc)
    r.note(f"{b.bc}: {len(b.frames)} chunks of {b.manifest['audio']['chunk_size']} B, "
           f"sha256 {b.manifest['audio']['sha256'][:16]}…; acks {[a.get('state') for a in acks]}")
    bad = _ack_problems(ctx, b)
    states = h.states(b.bc)
    if not done:
        r.failed(f"no `verified` within {h.timeout_s:.0f} s")
    elif states[:2] != ["receiving", "verified"]:
        r.failed(f"acks {states}, expected receiving then verified")
    elif acks[0].get("have") != 0 or acks[1].get("have") is not None:
        r.failed(f"`have` is {acks[0].get('have')!r} on receiving (expected 0) and "
                 f"{acks[1].get('have')!r} on verified (expected null)")
    elif bad:
        r.failed("; ".join(bad))
    elif h.objs("repair", bc=b.bc):
        r.failed(f"asked for chunks it had: {clip(json.dumps(h.objs('repair', bc=b.bc)))}")
    else:
        ctx.verified = b
        r.passed(f"verified: {clip(json.dumps(acks[1]))}")


async def crc(ctx: Context, r: Result) -> None:
    """A chunk whose CRC is wrong is discarded and asked for again (only that one)."""
    h = ctx.h
    b = _offered(ctx)
    await h.offer(b, frames={1: crc_broken(b.frames[1])})
    reqs = await h.wait(lambda: h.objs("repair", bc=b.bc))
    if not reqs:
        r.failed(f"no repair for the corrupted chunk 1 within {h.timeout_s:.0f} s; acks {h.states(b.bc)}")
        return
    first = reqs[0]
    r.note(f"repair: {clip(json.dumps(first))}")
    await h.send_chunks(b, [i for i in first.get("missing", []) if isinstance(i, int) and i < len(b.frames)])
    done = await h.wait(lambda: {"verified", "failed"} & set(h.states(b.bc)))
    r.note(f"acks {h.states(b.bc)}")
    bad = problems(first, REPAIR, h.unit)
    if bad:
        r.failed("; ".join(bad))
    elif first.get("missing") == list(range(len(b.frames))):
        r.failed("it asked for every chunk: the CRC was not checked (the file's SHA-256 caught it)")
    elif first.get("missing") != [1]:
        r.failed(f"asked for {first.get('missing')}, expected [1]")
    elif not done or "verified" not in h.states(b.bc):
        r.failed("not verified after the repair")
    else:
        r.passed("chunk 1 asked for again, then verified")


async def sha256(ctx: Context, r: Result) -> None:
    """Chunks with valid CRCs but a wrong file: all asked for again once, then failed/checksum."""
    h = ctx.h
    b = _offered(ctx)
    bad = {1: sha_broken(b.frames[1])}
    await h.offer(b, frames=bad)
    reqs = await h.wait(lambda: h.objs("repair", bc=b.bc) or "failed" in h.states(b.bc))
    asked = h.objs("repair", bc=b.bc)
    if asked:
        r.note(f"after the mismatch: repair {clip(json.dumps(asked[0]))}")
        await h.send_chunks(b, list(range(len(b.frames))), bad)  # the same wrong file again
    fails = await h.wait(lambda: [a for a in h.acks(b.bc) if a.get("state") == "failed"])
    states = h.states(b.bc)
    r.note(f"acks {states}")
    if "verified" in states:
        r.failed("verified a file whose SHA-256 does not match the manifest")
    elif not reqs or not asked or asked[0].get("missing") != list(range(len(b.frames))):
        r.failed("did not ask for every chunk again after the first mismatch")
    elif not fails or fails[0].get("reason") != "checksum":
        r.failed(f"no failed/checksum after the second mismatch: {clip(json.dumps(fails))}")
    else:
        r.passed("asked for all chunks again once, then failed/checksum")


async def repair(ctx: Context, r: Result) -> None:
    """A withheld chunk is asked for (only it), and the file is verified once it comes."""
    h = ctx.h
    b = _offered(ctx)
    await h.offer(b, skip=frozenset({2}))
    reqs = await h.wait(lambda: h.objs("repair", bc=b.bc))
    if not reqs:
        r.failed(f"chunk 2 withheld: no repair within {h.timeout_s:.0f} s; acks {h.states(b.bc)}")
        return
    r.note(f"repair: {clip(json.dumps(reqs[0]))}")
    await h.send_chunks(b, [2])
    done = await h.wait(lambda: {"verified", "failed"} & set(h.states(b.bc)))
    r.note(f"acks {h.states(b.bc)}")
    if reqs[0].get("missing") != [2]:
        r.failed(f"asked for {reqs[0].get('missing')}, expected [2]")
    elif not done or "verified" not in h.states(b.bc):
        r.failed("not verified after the repair")
    else:
        r.passed()


async def play(ctx: Context, r: Result) -> None:
    """`play` at an instant 2 s ahead: answered ok, then acks playing and played."""
    h, b = ctx.h, ctx.verified
    if b is None:
        r.not_tested("no verified broadcast to play (item deliver did not pass)")
        return
    at = now_ms() + 2000
    start = time.monotonic()
    cmd_id, resp = await h.call("play", {"bc": b.bc, "at": at, "offset_ms": 0})
    r.note(f"play at {at}: response {clip(json.dumps(resp))}")
    done = await h.wait(lambda: {"played", "failed"} & set(h.states(b.bc)),
                        within=h.timeout_s + b.duration_ms / 1000)
    playing = next((s for s in h.of("ack") if s.obj and s.obj.get("bc") == b.bc
                    and s.obj.get("state") == "playing"), None)
    early = playing is not None and playing.wall_ms - at < -EARLY_MS
    late = playing is not None and playing.wall_ms - at > LATE_MS
    if playing is not None and playing.obj is not None:
        r.note(f"`playing` ack arrived {playing.wall_ms - at} ms after `at` (kit clock); "
               f"its ts − at = {playing.obj.get('ts', 0) - at} ms (unit clock)")
    states = h.states(b.bc)
    r.note(f"acks {states}; {time.monotonic() - start:.1f} s")
    if not resp or resp.get("status") != "ok" or resp.get("data", {}).get("bc") != b.bc:
        r.failed("the play was not answered ok with data.bc")
    elif not done or states[-2:] != ["playing", "played"]:
        r.failed("no playing then played")
    elif ctx.gateway:
        r.passed("§7.5: a gateway's child airs in its turn on the line, `at` is not used "
                 "(timing not checked)")
    elif early or late:
        r.failed(f"started {'before' if early else 'long after'} the instant "
                 "(its clock is off: see clock_sync)")
    else:
        r.passed()


async def play_once(ctx: Context, r: Result) -> None:
    """A second `play` (new id) for a played broadcast: `already: played`, its ack re-sent, no replay."""
    h, b = ctx.h, ctx.verified
    if b is None or "played" not in h.states(b.bc):
        r.not_tested("no played broadcast (item play did not pass)")
        return
    before = len(h.acks(b.bc))
    _, resp = await h.call("play", {"bc": b.bc, "at": now_ms() + 500, "offset_ms": 0})
    await h.quiet()
    new = h.states(b.bc)[before:]
    r.note(f"response {clip(json.dumps(resp))}; acks after it {new}")
    if not resp or resp.get("status") != "ok" or resp.get("data", {}).get("already") != "played":
        r.failed("not answered ok with already: played")
    elif "playing" in new:
        r.failed("played it a second time")
    elif "played" not in new:
        r.failed("the final ack was not re-sent")
    else:
        r.passed()


async def _verified(ctx: Context, r: Result) -> Bcast | None:
    """A fresh broadcast offered whole and verified, or None (noted)."""
    h = ctx.h
    b = _offered(ctx)
    await h.offer(b)
    if not await h.wait(lambda: "verified" in h.states(b.bc)):
        r.not_tested(f"{b.bc} was not verified (acks {h.states(b.bc)}): see item deliver")
        return None
    return b


async def not_ready(ctx: Context, r: Result) -> None:
    """`play` while downloading: error not_ready: have/total; a withdrawal then ends it silently."""
    h = ctx.h
    b = _offered(ctx)
    await h.offer(b, skip=frozenset(range(1, len(b.frames))))
    if not await h.wait(lambda: "receiving" in h.states(b.bc)):
        r.failed(f"no receiving ack for {b.bc}")
        return
    _, resp = await h.call("play", {"bc": b.bc, "at": now_ms() + 1000, "offset_ms": 0})
    r.note(f"play with 1/{len(b.frames)} chunks: {clip(json.dumps(resp))}")
    before = len(h.acks(b.bc))
    await h.withdraw(b)
    await h.quiet()
    after = h.states(b.bc)[before:]
    r.note(f"withdrawn (empty retained manifest): acks after it {after}")
    if not resp or resp.get("status") != "error" or not str(resp.get("error", "")).startswith("not_ready"):
        r.failed("not answered error not_ready: <have>/<total> chunks")
    elif "playing" in h.states(b.bc):
        r.failed("played a file it did not have")
    elif after:
        r.failed("a withdrawal while receiving must end the download silently (no ack)")
    else:
        r.passed()


async def late_join(ctx: Context, r: Result) -> None:
    """`play` whose instant passed 1 s ago: starts at once, mid-way, and ends played."""
    h = ctx.h
    b = await _verified(ctx, r)
    if b is None:
        return
    at = now_ms() - 1000
    _, resp = await h.call("play", {"bc": b.bc, "at": at, "offset_ms": 0})
    done = await h.wait(lambda: {"played", "failed"} & set(h.states(b.bc)),
                        within=h.timeout_s + b.duration_ms / 1000)
    acks = {s.obj.get("state"): s.wall_ms for s in h.of("ack") if s.obj and s.obj.get("bc") == b.bc}
    r.note(f"play at now − 1 s ({b.duration_ms} ms of audio): {clip(json.dumps(resp))}; "
           f"acks {h.states(b.bc)}")
    if "playing" in acks and "played" in acks:
        r.note(f"played {acks['played'] - acks['playing']} ms (the whole file: {b.duration_ms} ms)")
    if not resp or resp.get("status") != "ok":
        r.failed("a play whose instant passed was not accepted")
    elif not done or h.states(b.bc)[-2:] != ["playing", "played"]:
        r.failed("no playing then played (a late play joins mid-way)")
    else:
        r.passed()


async def cancel(ctx: Context, r: Result) -> None:
    """`cancel` of a held broadcast (found, failed/cancelled once) and of one not yet offered
    (found false, remembered: its manifest is answered failed/cancelled, never downloaded)."""
    h = ctx.h
    b = await _verified(ctx, r)
    if b is None:
        return
    _, held = await h.call("cancel", {"bc": b.bc})
    later = _offered(ctx)
    _, ahead = await h.call("cancel", {"bc": later.bc})
    await h.offer(later)
    await h.wait(lambda: h.states(later.bc))
    await h.quiet()
    r.note(f"held {b.bc}: {clip(json.dumps(held))}; acks {h.states(b.bc)}")
    r.note(f"before its manifest, {later.bc}: {clip(json.dumps(ahead))}; acks {h.states(later.bc)}")
    cancelled = [a for a in h.acks(b.bc) if a.get("state") == "failed" and a.get("reason") == "cancelled"]
    late_acks = h.acks(later.bc)
    if not held or held.get("data") != {"cancelled": b.bc, "found": True}:
        r.failed("cancel of a held broadcast not answered {cancelled: bc, found: true}")
    elif len(cancelled) != 1:
        r.failed(f"{len(cancelled)} failed/cancelled acks for the held broadcast, expected 1")
    elif not ahead or ahead.get("data") != {"cancelled": later.bc, "found": False}:
        r.failed("cancel of an unknown broadcast not answered {cancelled: bc, found: false}")
    elif not late_acks or any((a.get("state"), a.get("reason")) != ("failed", "cancelled")
                              for a in late_acks):
        r.failed("the manifest of a cancelled broadcast was not answered failed/cancelled alone")
    elif h.objs("repair", bc=later.bc):
        r.failed("it asked for chunks of a cancelled broadcast")
    else:
        r.passed()


async def stop_power(ctx: Context, r: Result) -> None:
    """`stop` (nothing playing; a bad reason; a held broadcast) and `power` off / on."""
    h = ctx.h
    _, idle = await h.call("stop")
    _, bogus = await h.call("stop", {"reason": "bogus"})
    r.note(f"stop, nothing playing: {clip(json.dumps(idle))}; "
           f"reason \"bogus\": {clip(json.dumps(bogus))}")
    b = await _verified(ctx, r)
    if b is None:
        return
    _, held = await h.call("stop", {"bc": b.bc})
    stopped = await h.wait(lambda: [a for a in h.acks(b.bc) if a.get("state") == "failed"])
    r.note(f"stop of the held {b.bc}: {clip(json.dumps(held))}; acks {h.states(b.bc)}")
    start = time.monotonic()
    _, off = await h.call("power", {"on": False})
    tel_off = await h.wait(lambda: h.objs("telemetry", start, power=False))
    _, on = await h.call("power", {"on": True})
    r.note(f"power off: {clip(json.dumps(off))}, telemetry power false: {bool(tel_off)}; "
           f"power on: {clip(json.dumps((on or {}).get('data')))}")
    if not idle or idle.get("status") != "ok" or idle.get("data") != {"stopped": ""}:
        r.failed("stop with nothing playing not answered {stopped: ''}")
    elif not bogus or bogus.get("status") != "error" \
            or not str(bogus.get("error")).startswith("bad arguments"):
        r.failed("stop with an unknown reason not answered error bad arguments")
    elif not held or held.get("status") != "ok" or held.get("data", {}).get("stopped") != b.bc:
        r.failed("stop of a held broadcast not answered {stopped: bc}")
    elif not stopped or stopped[0].get("reason") != "stopped":
        r.failed("the held broadcast did not end failed/stopped")
    elif not off or off.get("data") != {"power": False} or not on or on.get("data") != {"power": True}:
        r.failed("power not answered {power: false} / {power: true}")
    elif not tel_off:
        r.failed("no telemetry with power false at once (on change)")
    else:
        r.passed()


ITEMS: list[Item] = [
    ("deliver", "§3 manifest, data chunks, acknowledgements", "manifest + chunks: receiving, verified",
     deliver),
    ("crc", "§3 data chunks", "a chunk with a wrong CRC is discarded and repaired", crc),
    ("sha256", "§3 data chunks", "a file with a wrong SHA-256: all chunks again once, then failed/checksum",
     sha256),
    ("repair", "§3 repair", "a withheld chunk is asked for", repair),
    ("play", "§3 starting in step", "play at an instant: playing then played", play),
    ("play_once", "§3 when a command is lost (reconcile)", "a broadcast is played at most once", play_once),
    ("not_ready", "§3 starting in step, acknowledgements",
     "play while downloading: not_ready; withdrawal silent", not_ready),
    ("late_join", "§3 starting in step", "a play whose instant passed joins mid-way", late_join),
    ("cancel", "§2 Commands (cancel)", "cancel a held broadcast, and one before its manifest", cancel),
    ("stop_power", "§2 Commands (stop, power)", "stop idle / held / bad reason; power off and on",
     stop_power),
]
