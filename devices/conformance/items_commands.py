"""Items of docs/protocol.md §2 and §6: correlation ids, dedupe, expiry, bad arguments, bad
envelopes and oversize payloads (the unit must live through them), and §1's clean shutdown."""

from __future__ import annotations

import json
import time

from devices.conformance.context import Context, Item, clip
from devices.conformance.report import Result
from devices.conformance.shape import RESP, problems
from devices.messages import now_ms


async def correlation(ctx: Context, r: Result) -> None:
    """A `ping` is answered once, on resp, with its id."""
    h = ctx.h
    cmd_id, resp = await h.call("ping")
    await h.quiet()
    got = h.responses(cmd_id)
    r.note(f"ping {cmd_id}: {len(got)} response(s); {clip(json.dumps(resp))}")
    bad = problems(resp, RESP, h.unit) if resp else ["no response"]
    uptime = (resp or {}).get("data", {}).get("uptime_s")
    if bad:
        r.failed("; ".join(bad))
    elif resp and resp.get("status") != "ok":
        r.failed("status is not ok")
    elif not isinstance(uptime, int) or isinstance(uptime, bool):
        r.failed(f"data.uptime_s is {uptime!r}, expected an integer")
    elif len(got) != 1:
        r.failed(f"answered {len(got)} times")
    else:
        r.passed()


async def dedupe(ctx: Context, r: Result) -> None:
    """The same command id again (another level) is neither answered nor executed."""
    h = ctx.h
    first, second = 41, 42
    cmd_id, resp = await h.call("volume", {"level": first})
    r.note(f"volume {first} ({cmd_id}): {clip(json.dumps(resp))}")
    if not resp or resp.get("status") != "ok":
        r.not_tested("the first volume command was not answered ok")
        return
    start = time.monotonic()
    await h.command("volume", {"level": second}, cmd_id=cmd_id)
    await h.quiet()
    alive = await h.alive()  # a barrier too: the unit answers in order, so whatever it did is in
    again = h.responses(cmd_id)[1:]
    applied = h.objs("telemetry", start, volume=second)
    await h.call("volume", {"level": ctx.volume})  # back to the config's level
    r.note(f"same id, volume {second}: {len(again)} more response(s), telemetry volume {second}: "
           f"{bool(applied)}; a ping after it {'answered' if alive else 'NOT answered'}")
    if again or applied:
        r.failed("the repeated id was executed or answered again")
    elif not alive:
        r.failed("the unit stopped answering")
    else:
        r.passed()


async def expiry(ctx: Context, r: Result) -> None:
    """A command whose expires_at has passed is dropped unanswered and not executed."""
    h = ctx.h
    level = 39
    start = time.monotonic()
    cmd_id = await h.command("volume", {"level": level}, expires_in_s=-60)
    await h.quiet()
    alive = await h.alive()  # also a barrier: what the unit did with the expired one came before
    resp = h.responses(cmd_id)
    applied = h.objs("telemetry", start, volume=level)
    r.note(f"volume {level} expired 60 s ago ({cmd_id}): responses {clip(json.dumps(resp))}, "
           f"telemetry volume {level}: {bool(applied)}; "
           f"a ping after it {'answered' if alive else 'NOT answered'}")
    if applied:
        await h.call("volume", {"level": ctx.volume})
    if resp or applied:
        r.failed("the expired command was answered or executed")
    elif not alive:
        r.failed("the unit stopped answering")
    else:
        r.passed()


async def bad_arguments(ctx: Context, r: Result) -> None:
    """Wrong arguments are answered error 'bad arguments: …'; an unknown name 'unknown command'."""
    h = ctx.h
    _, typed = await h.call("volume", {"level": "60"})
    _, ranged = await h.call("volume", {"level": 101})
    _, unknown = await h.call("no_such_command")
    for what, resp in (("level \"60\"", typed), ("level 101", ranged), ("unknown name", unknown)):
        r.note(f"{what}: {clip(json.dumps(resp))}")
    bad = [what for what, resp, want in (("level \"60\"", typed, "bad arguments"),
                                         ("level 101", ranged, "bad arguments"),
                                         ("unknown name", unknown, "unknown command"))
           if not resp or resp.get("status") != "error" or not str(resp.get("error", "")).startswith(want)]
    if bad:
        r.failed(f"not answered as §2 says: {bad}")
    else:
        r.passed()


def _bad_envelopes(h_id: str) -> list[tuple[str, bytes]]:
    """(what, payload): each must go unanswered (§2 *Bad input*)."""
    base = {"v": 1, "ts": now_ms(), "id": h_id, "name": "ping", "args": {}, "expires_at": None}
    variants = {"v missing": {k: v for k, v in base.items() if k != "v"}, "v 2": base | {"v": 2},
                "v \"1\"": base | {"v": "1"}, "id 65 chars": base | {"id": "x" * 65},
                "name 7": base | {"name": 7}, "args []": base | {"args": []},
                "expires_at \"soon\"": base | {"expires_at": "soon"}}
    out = [(what, json.dumps(obj).encode()) for what, obj in variants.items()]
    return [*out, ("not JSON", b"{ping"), ("a JSON array", b"[1,2]"), ("invalid UTF-8", b'{"v":1,\xff}')]


async def bad_envelope(ctx: Context, r: Result) -> None:
    """Bad envelopes are ignored: no answer, and the unit still answers a ping."""
    h = ctx.h
    cmd_id = h.new_id("bad")
    cases = _bad_envelopes(cmd_id)
    for _, payload in cases:
        await h.publish(h.t.cmd(h.unit), payload)
    await h.quiet()
    alive = await h.alive()
    answered = h.responses(cmd_id) + h.responses("x" * 65)
    r.note(f"{len(cases)} bad envelopes ({', '.join(w for w, _ in cases)}): {len(answered)} answered; "
           f"a ping after them {'answered' if alive else 'NOT answered'}")
    if not alive:
        r.failed("the unit stopped answering")
    elif answered:
        r.failed(f"answered a bad envelope: {clip(json.dumps(answered))}")
    else:
        r.passed()


async def oversize(ctx: Context, r: Result) -> None:
    """Oversize and pathological payloads on every topic the unit reads do not kill it."""
    h = ctx.h
    big = json.dumps({"v": 1, "ts": now_ms(), "id": h.new_id(), "name": "ping",
                      "args": {"pad": "x" * 100_000}, "expires_at": None}).encode()
    deep = b"[" * 50_000 + b"]" * 50_000
    digits = b'{"v":1,"ts":' + b"9" * 5000 + b',"id":"c-digits","name":"ping","args":{},"expires_at":null}'
    bc = f"conf-{h.run}-junk"
    scope = h.scope()
    sends = [(h.t.cmd(h.unit), big), (h.t.cmd(h.unit), deep), (h.t.cmd(h.unit), digits),
             (h.t.manifest(scope, bc), deep), (h.t.data(scope, bc), bytes(range(256)) * 400),
             (h.t.data(scope, bc), b"LPA"), (h.t.clock(h.unit), big), (h.t.config(h.unit) + "/x", big)]
    for topic, payload in sends:
        await h.publish(topic, payload)
    await h.quiet()
    alive = await h.alive()
    hb_before = len(h.of("heartbeat"))
    r.note(f"sent {len(sends)} payloads (100 KB JSON command, 50,000-deep nesting, a 5,000-digit number, "
           f"junk manifest and chunks, an oversize clock reply); a ping after them "
           f"{'answered' if alive else 'NOT answered'}; heartbeats seen so far {hb_before}")
    if h.states(bc):
        r.failed(f"acked a junk broadcast: {h.states(bc)}")
    elif not alive:
        r.failed("the unit stopped answering after bad input")
    else:
        r.passed()


async def shutdown(ctx: Context, r: Result) -> None:
    """`reboot`: answered `{}`, then retained `shutdown` (old session), then `online` with a new one."""
    h = ctx.h
    if not ctx.reboot:
        r.not_tested("--no-reboot given")
        return
    start = time.monotonic()
    _, resp = await h.call("reboot")
    r.note(f"reboot: {clip(json.dumps(resp))}")
    down = await h.wait(lambda: [s for s in h.of("state", start)
                                 if s.obj and s.obj.get("status") != "online"])
    up = await h.wait(lambda: [s for s in h.of("state", start) if s.obj and s.obj.get("status") == "online"],
                      within=60 + h.timeout_s)
    first_down = down[0].obj if down else None
    new = up[0].obj if up else None
    r.note(f"then: {clip(down[0].payload) if down else 'no state'}; "
           f"{clip(up[0].payload) if up else 'no online state'}")
    if not resp or resp.get("status") != "ok":
        r.failed("reboot not answered ok")
    elif not first_down or first_down.get("status") != "shutdown":
        r.failed("no `shutdown` state before going away (the last-will fired, or nothing)")
    elif first_down.get("session") != ctx.session:
        r.failed(f"the shutdown carries session {first_down.get('session')!r}, not the one it ends")
    elif not new or new.get("session") == ctx.session:
        r.failed("not back online with a new session")
    else:
        ctx.session = str(new.get("session"))
        hb = await h.wait(lambda: h.objs("heartbeat", start, session=ctx.session))
        if not hb or hb[0].get("seq") != 0:
            r.failed(f"the first heartbeat of the new session has seq {hb[0].get('seq') if hb else None}")
        else:
            r.passed("shutdown with the old session, back online with a new one, heartbeat seq 0")


ITEMS: list[Item] = [
    ("correlation", "§2 Commands", "a command is answered once with its id", correlation),
    ("dedupe", "§2 Commands", "a repeated command id is not executed twice", dedupe),
    ("expiry", "§2 Commands", "an expired command is not executed", expiry),
    ("bad_arguments", "§2 Commands (bad input)", "bad arguments and unknown names are answered error",
     bad_arguments),
    ("bad_envelope", "§2 Commands (bad input), §6", "bad envelopes go unanswered, the unit lives",
     bad_envelope),
    ("oversize", "§6 Limits and bad input", "oversize and malformed payloads do not kill the unit", oversize),
    ("shutdown", "§1 Connecting", "clean shutdown on reboot, new session after", shutdown),
]
