"""Items of docs/protocol.md §1 *Connecting* that need the kit's link mode (``--listen``): the
last-will (the kit cuts the connection, the broker publishes the retained `offline`) and the
login and reconnect rules (client id, credentials, keepalive, clean session; logins refused with
CONNACK "not authorized" retried with the §1 backoff). Both read one drill
(:mod:`devices.conformance.drill`), run by whichever item comes first."""

from __future__ import annotations

import itertools
import json

from devices.conformance.context import Context, Item, clip
from devices.conformance.drill import REFUSALS, Drill, run_drill
from devices.conformance.report import Result
from devices.conformance.shape import STATE, parse, problems

#: §1: every wait is min(CAP, FIRST × 2^k) × U(0.5, 1.0), k +1 per failure.
FIRST_S, CAP_S = 0.5, 60.0
#: measuring slack: a wait may come this much early (×) or late (× and + s) on a busy machine
EARLY, LATE, LATE_S = 0.9, 1.1, 0.3
#: §1 keepalive: 30 s, up to 60 s on 4G
KEEPALIVE = range(30, 61)

HOW = ("needs the link mode: run the kit with --listen HOST:PORT and point the unit at that port "
       "(docs/conformance.md *Link mode*)")


async def _drill(ctx: Context) -> Drill | None:
    if ctx.link is None:
        return None
    if ctx.drill is None:
        ctx.drill = await run_drill(ctx.h, ctx.link, ctx.gateway or ctx.h.unit)
    return ctx.drill


def backoff_fit(gaps: list[float]) -> int | None:
    """The ``k`` of the first wait if every wait lies in §1's band with ``k`` +1 each time, else None."""
    for k0 in range(12):
        bands = [min(CAP_S, FIRST_S * 2 ** (k0 + i)) for i in range(len(gaps))]
        if all(EARLY * b / 2 <= g <= LATE * b + LATE_S for g, b in zip(gaps, bands, strict=True)):
            return k0
    return None


def unjittered(gaps: list[float]) -> bool:
    """Every wait exactly twice the one before (±1.5 %): no random factor (§1: U(0.5, 1.0))."""
    ratios = [b / a for a, b in itertools.pairwise(gaps) if a > 0 and b < CAP_S / 2]
    return len(ratios) >= 3 and all(abs(r - 2) < 0.03 for r in ratios)


def _login_problems(ctx: Context, d: Drill) -> list[str]:
    want = ctx.gateway or ctx.h.unit
    out = []
    for conn in {a.connect for a in ctx.link.attempts if a.connect} if ctx.link else set():
        if conn.client_id != want:
            out.append(f"client id {conn.client_id!r}, expected {want!r} (§1: the node id"
                       + ("; a child's connection is its gateway's, §7.5)" if ctx.gateway else ")"))
        if not conn.username or not conn.password:
            out.append("no username and password (§1: the node's own credentials)")
        if conn.keepalive not in KEEPALIVE:
            out.append(f"keepalive {conn.keepalive} s, expected 30–60 s")
        if not conn.clean:
            out.append("clean session false (§1: true)")
    return sorted(set(out))


async def credentials(ctx: Context, r: Result) -> None:
    """CONNECT fields; refused logins retried with a growing, jittered wait; in once let through."""
    d = await _drill(ctx)
    if d is None or ctx.link is None:
        r.not_tested(HOW)
        return
    seen = sorted({a.connect.describe() for a in ctx.link.attempts if a.connect})
    r.note(f"logins through the kit: {seen}")
    if d.cut is None or d.through is None:
        r.not_tested("; ".join(d.notes) or "the drill did not run")
        return
    gaps, bad = d.gaps(), _login_problems(ctx, d)
    fit = backoff_fit(gaps)
    r.note(f"cut, then {len(d.refused)} logins refused (CONNACK not authorized), then let through: waits "
           f"{gaps} s (§1 band: min(60, 0.5 × 2^k) × 0.5–1.0; "
           + (f"fits from k = {fit})" if fit is not None else "fits no k)"))
    same = d.back is not None and d.back.get("session") == (d.before or {}).get("session")
    r.note(f"broker's CONNACK when let through: {d.through.broker_code}; then online: "
           f"{clip(json.dumps(d.reborn)) if d.reborn else 'never'}")
    if bad:
        r.failed("; ".join(bad))
    elif len(d.refused) < REFUSALS:
        r.failed(f"{len(d.refused)} refused logins seen, expected {REFUSALS}")
    elif min(gaps) < EARLY * FIRST_S / 2:
        r.failed(f"retried {min(gaps):.3f} s after a refusal: hammering (§1: 0.25 s at the least, growing)")
    elif fit is None:
        r.failed("the waits do not follow §1 (each in min(60 s, 0.5 s × 2^k) × 0.5–1.0, k +1 per failure)")
    elif unjittered(gaps):
        r.failed("every wait is exactly twice the last: not jittered (§1: × a factor drawn in 0.5–1.0)")
    elif d.through.broker_code != 0 or d.reborn is None or d.back is None:
        r.failed("not back online once the kit let it through")
    elif not same:
        r.failed("back online with a new session: it restarted (a crash loop); §1 keeps the session")
    else:
        r.passed()


def _will_problems(ctx: Context, d: Drill) -> list[str]:
    h = ctx.h
    will = d.cut.connect.will if d.cut and d.cut.connect else None
    if will is None:
        return ["the CONNECT carries no last-will"]
    obj, out = parse(will.payload), []
    if will.topic != h.t.state(d.owner):
        out.append(f"will topic {will.topic!r}, expected {h.t.state(d.owner)!r}")
    if will.qos != 1 or not will.retain:
        out.append(f"will QoS {will.qos} retain {will.retain}, expected QoS 1 retained")
    out += [f"will payload: {p}" for p in problems(obj, STATE, d.owner)]
    if obj is not None and obj.get("status") != "offline":
        out.append(f"will status {obj.get('status')!r}, expected offline")
    if obj is not None and d.before and obj.get("session") != d.before.get("session"):
        out.append(f"will session {obj.get('session')!r}, not the online state's {d.before.get('session')!r}")
    if ctx.gateway and h.unit not in ((obj or {}).get("children") or []):
        out.append(f"the gateway's will does not list {h.unit} in children (§7.5)")
    return out


async def last_will(ctx: Context, r: Result) -> None:
    """The CONNECT's will is §1's; cut abruptly, the broker keeps `offline`; back by itself, online."""
    d = await _drill(ctx)
    if d is None:
        r.not_tested(HOW)
        return
    if d.cut is None or d.cut.connect is None:
        r.not_tested("; ".join(d.notes) or "no login seen")
        return
    will = d.cut.connect.will
    r.note(f"{'gateway ' + d.owner + ' (its connection carries the child, §7.5)' if ctx.gateway else d.owner}"
           f": will {clip(will.payload) if will else None}")
    live = [s for s in ctx.h.of("state", d.cut_at) if s.obj and s.obj.get("status") != "online"]
    r.note("cut with no DISCONNECT; retained state then: " + (
        clip(json.dumps(d.after_cut)) if d.after_cut else "still `online` (no offline kept within 5 s)")
        + (f"; seen live: {clip(live[0].payload)} (retained={live[0].retained})" if live else ""))
    r.note(f"back: {d.through.connect.describe() if d.through and d.through.connect else 'no'}; "
           f"retained state {clip(json.dumps(d.back))}; the unit's state {clip(json.dumps(d.reborn))}")
    bad = _will_problems(ctx, d)
    session = (d.before or {}).get("session")
    if bad:
        r.failed("; ".join(bad))
    elif d.after_cut is None or d.after_cut != parse(will.payload if will else b""):
        r.failed("after the cut the broker did not keep the will (the retained state is not `offline`)")
    elif d.through is None or d.through.connect is None or not d.through.connect.clean:
        r.failed("it did not log in again by itself with a clean session")
    elif d.back is None or d.back.get("session") != session or d.reborn is None:
        r.failed("not `online` again with the session it had (§1: a reconnect is not a boot)")
    else:
        r.passed("will fired on the cut, back online by itself"
                 + (f"; the child's state re-published, session {d.reborn.get('session')}" if ctx.gateway
                    else ""))


ITEMS: list[Item] = [
    ("last_will", "§1 Connecting", "the last-will: cut abruptly, the retained offline; back by itself",
     last_will),
    ("credentials", "§1 Connecting", "client id, login, keepalive; refused logins retried with the backoff",
     credentials),
]
