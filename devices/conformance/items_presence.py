"""Items of docs/protocol.md §1: birth and session, heartbeat, config and groups, telemetry,
and §2's refusal of a retained command (it needs a fresh group subscription)."""

from __future__ import annotations

import itertools
import json
import time

from devices.conformance.context import Context, Item, child_lacks, clip
from devices.conformance.report import Result
from devices.conformance.shape import HEARTBEAT, STATE, TIME, parse, problems, telemetry_problems
from devices.messages import now_ms


async def birth(ctx: Context, r: Result) -> None:
    h = ctx.h
    got = await h.wait(lambda: [s for s in h.of("state") if s.obj and s.obj.get("status") == "online"])
    if not got:
        seen = [clip(s.payload) for s in h.of("state")]
        r.failed(f"no `online` state on {h.t.state(h.unit)} within {h.timeout_s:.0f} s; states seen: {seen}")
        return
    s = got[-1]
    assert s.obj is not None
    r.note(f"state: {clip(s.payload)} (retained={s.retained})")
    bad = problems(s.obj, STATE, h.unit)
    if s.obj.get("proto") != 1:
        bad.append(f"proto {s.obj.get('proto')!r}, expected 1")
    if not s.retained:  # it came live (the kit subscribed first): ask the broker what it keeps
        kept = parse(await h.retained(h.t.state(h.unit)) or b"")
        r.note(f"retained copy: {clip(json.dumps(kept))}")
        if not kept or kept.get("status") != "online" or kept.get("session") != s.obj.get("session"):
            bad.append("the birth is not retained (QoS 1, retained)")
    ctx.session = str(s.obj.get("session", ""))
    ctx.gateway = str(s.obj.get("gateway") or "")
    if ctx.gateway:
        r.note(f"a child of the serial gateway {ctx.gateway} (§7.5): its own rules apply where they differ")
    if bad:
        r.failed("; ".join(bad))
    else:
        r.passed(f"online, session {ctx.session}")


async def heartbeat(ctx: Context, r: Result) -> None:
    h, period = ctx.h, ctx.heartbeat_s
    start = time.monotonic()
    got = await h.wait(lambda: len(h.of("heartbeat", start)) >= 3 and h.of("heartbeat", start),
                       within=3.5 * period + h.timeout_s)
    if not got:
        r.failed(f"{len(h.of('heartbeat', start))} heartbeat(s) in {time.monotonic() - start:.0f} s, "
                 f"expected one every {period:g} s")
        return
    hbs = got[:3]
    bad = [f"heartbeat {i}: {p}" for i, s in enumerate(hbs) for p in problems(s.obj, HEARTBEAT, h.unit)]
    if bad:
        r.failed("; ".join(bad))
        return
    seqs = [s.obj["seq"] for s in hbs if s.obj]
    sessions = {s.obj["session"] for s in hbs if s.obj}
    gaps = [b.at - a.at for a, b in itertools.pairwise(hbs)]
    r.note(f"seq {seqs}, session {sorted(sessions)}, intervals {[round(g, 2) for g in gaps]} s "
           f"(expected {period:g} s); first: {clip(hbs[0].payload)}")
    if any(b != a + 1 for a, b in itertools.pairwise(seqs)):
        r.failed("seq does not go +1 per heartbeat")
    elif ctx.session and sessions != {ctx.session}:
        r.failed(f"heartbeat session {sorted(sessions)} is not the birth's {ctx.session}")
    elif any(g > 2 * period + 2 for g in gaps) or sum(gaps) / len(gaps) < 0.5 * period:
        r.failed(f"intervals far from {period:g} s")
    elif any(s.retained for s in hbs):
        r.failed("a heartbeat was retained (§6: only state is retained)")
    else:
        r.passed()


async def _answers_on(ctx: Context, group: str, within: float) -> dict[str, object] | None:
    """Ping on a group's cmd topic, again every second, until the unit answers one (or ``within`` s)."""
    h = ctx.h
    deadline = time.monotonic() + within
    ids: list[str] = []
    while time.monotonic() < deadline:
        ids.append(await h.command("ping", topic=h.t.group_cmd(group)))
        got = await h.wait(lambda: next((x for i in ids for x in h.responses(i)), None), within=1.0)
        if got:
            return got
    return None


async def config(ctx: Context, r: Result) -> None:
    """Retained config: the volume is applied (telemetry on change) and the groups subscribed."""
    h = ctx.h
    ga, gb = f"{h.group}-a", f"{h.group}-b"
    ctx.volume = 65
    start = time.monotonic()
    await h.config([ga], volume=ctx.volume)
    tel = await h.wait(lambda: h.objs("telemetry", start, volume=ctx.volume))
    r.note(f"config volume {ctx.volume}: " + ("telemetry followed at once" if tel else
                                                "no telemetry with that volume (on change)"))
    on_a = await _answers_on(ctx, ga, h.timeout_s)
    r.note(f"ping on group {ga}: " + (f"answered {clip(json.dumps(on_a))}" if on_a else "not answered"))
    await h.config([gb], volume=ctx.volume)
    on_b = await _answers_on(ctx, gb, h.timeout_s)
    r.note(f"config groups [{gb}]: ping on {gb} " + ("answered" if on_b else "not answered"))
    stale = await h.command("ping", topic=h.t.group_cmd(ga))
    await h.quiet()
    left = h.responses(stale)
    r.note(f"ping on the removed group {ga}: " + ("answered (not unsubscribed)" if left else "not answered"))
    if tel and on_a and on_b and not left:
        r.passed()
    else:
        r.failed("the config was not followed (volume, group subscribe / unsubscribe)")


async def telemetry(ctx: Context, r: Result) -> None:
    h = ctx.h
    got = h.of("telemetry") or await h.wait(lambda: h.of("telemetry"), within=60 + h.timeout_s)
    if not got:
        r.failed("no telemetry (on change, or every 60 s)")
        return
    s = got[-1]
    r.note(f"telemetry: {clip(s.payload, 400)}")
    bad = telemetry_problems(s.obj, h.unit)
    if s.retained:
        bad.append("retained (§6: only state is retained)")
    if bad:
        r.failed("; ".join(bad))
    else:
        r.passed()


async def retained_command(ctx: Context, r: Result) -> None:
    """A retained command (delivered with the retain flag on a new subscription) is never executed."""
    h = ctx.h
    gr = f"{h.group}-r"
    topic = h.t.group_cmd(gr)
    level = 33
    cmd_id = await h.command("volume", {"level": level}, topic=topic, retain=True)
    start = time.monotonic()
    try:
        await h.config([h.group, gr], volume=ctx.volume)
        subscribed = await _answers_on(ctx, gr, h.timeout_s)
        if not subscribed:
            r.not_tested(f"the unit did not subscribe to {topic} (no answer to a ping there)")
            return
        await h.quiet()
    finally:
        await h.publish(topic, b"", retain=True)  # clear it, whatever happened
        await h.config([h.group], volume=ctx.volume)
    resp = h.responses(cmd_id)
    applied = h.objs("telemetry", start, volume=level)
    r.note(f"retained volume {level} ({cmd_id}) on {topic}, "
           "then the group subscribed (a ping there answered)")
    if resp or applied:
        r.failed(f"executed: response {clip(json.dumps(resp))}, telemetry volume {level}: {bool(applied)}")
    else:
        r.passed("no response, volume unchanged")


#: The slowest steady clock-sync polling of §1 *When to ask*.
POLL_S = 15


async def clock_sync(ctx: Context, r: Result) -> None:
    """The unit asks for the time, follows `sync_time`, and reports an offset the kit can bound."""
    h = ctx.h
    if ctx.gateway:  # §7.5: no clock sync (the gateway's host clock is the child's estimate)
        await child_lacks(ctx, r, "sync_time", {"server_ms": now_ms()})
        if h.of("time"):
            r.failed(f"the child asked for the time ({len(h.of('time'))} requests): §7.5 gives it none")
        return
    polled = await h.wait(lambda: h.of("time"), within=POLL_S + h.timeout_s)
    start = time.monotonic()
    _, resp = await h.call("sync_time", {"server_ms": now_ms()})
    asked = await h.wait(lambda: h.of("time", start))
    await h.quiet()
    nudge = time.monotonic()  # a change of volume sends a telemetry now, carrying clock_offset_ms
    await h.call("volume", {"level": ctx.volume - 1})
    tel = await h.wait(lambda: h.objs("telemetry", nudge, volume=ctx.volume - 1)) or h.objs("telemetry")
    await h.call("volume", {"level": ctx.volume})
    data = (resp or {}).get("data", {})
    bounds = h.offset_bounds()
    reported = tel[-1].get("clock_offset_ms") if tel else None
    r.note(f"sync_time: {clip(json.dumps(resp))}; {len(h.of('time'))} time requests in all, "
           f"{len(h.of('time', start))} after it, {h.time_answered} answered")
    r.note(f"offset (kit − unit) bounded by the messages' ts: {bounds} ms; "
           f"telemetry clock_offset_ms {reported}")
    bad_time = [p for s in h.of("time") for p in problems(s.obj, TIME, h.unit)][:3]
    if not polled:
        r.failed(f"no clock-sync request on its own in {POLL_S + h.timeout_s:.0f} s (§1 *When to ask*: "
                 f"a burst after connecting, then every 5 s, then every {POLL_S} s)")
    elif not resp or resp.get("status") != "ok" or data.get("method") not in ("ntp", "one-way") \
            or not isinstance(data.get("offset_ms"), int):
        r.failed("sync_time not answered ok with offset_ms and method ntp|one-way")
    elif not asked:
        r.failed("no clock-sync request on {p}/node/{id}/time after sync_time")
    elif bad_time:
        r.failed("; ".join(bad_time))
    elif bounds is None or not isinstance(reported, int):
        r.failed("no offset in telemetry (clock_offset_ms)" if bounds else "too few messages to bound it")
    elif not bounds[0] - 50 <= reported <= bounds[1] + 50:
        r.failed(f"the reported offset {reported} ms is outside what its own messages allow {bounds}")
    else:
        r.passed()


ITEMS: list[Item] = [
    ("birth", "§1 Connecting, state", "birth: retained online state with a session", birth),
    ("heartbeat", "§1 heartbeat", "heartbeat every period, seq +1, same session", heartbeat),
    ("config", "§1 config", "retained config: volume applied, groups subscribed and unsubscribed", config),
    ("telemetry", "§1 telemetry", "telemetry shape and types", telemetry),
    ("retained_command", "§2 Commands", "a retained command is not executed", retained_command),
    ("clock_sync", "§1 clock sync", "time requests, sync_time, an offset consistent with its messages",
     clock_sync),
]
