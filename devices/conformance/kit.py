"""Runs the items in order against one unit and gathers the :class:`Report`."""

from __future__ import annotations

import logging
import sys
import time

from devices.conformance import (
    items_commands,
    items_delivery,
    items_emergency,
    items_link,
    items_live,
    items_presence,
    items_relay,
)
from devices.conformance.context import Check, Context, Item
from devices.conformance.harness import Harness
from devices.conformance.link import KitLink
from devices.conformance.report import Report, Result, Status, render
from devices.messages import now_ms
from devices.mqtt_types import Brokers, broker_list

logger = logging.getLogger(__name__)

#: Every item, in the order it runs (presence first: later items need a unit that is online).
ITEMS: list[Item] = (items_presence.ITEMS + items_delivery.ITEMS + items_emergency.ITEMS + items_relay.ITEMS
                     + items_live.ITEMS + items_commands.ITEMS + items_link.ITEMS)


async def run_kit(broker: Brokers, unit: str, *, prefix: str = "lp", timeout_s: float = 30.0,
                  quiet_s: float = 3.0, heartbeat_s: float = 15.0, reboot: bool = True,
                  only: set[str] | None = None, echo: bool = False, station_host: str = "",
                  link: KitLink | None = None) -> Report:
    """Drive every item (or those in ``only``) and return the report; ``echo`` prints each result.
    ``link``: the kit's port the unit connects through, started by the caller (link mode)."""
    names = ",".join(map(str, broker_list(broker)))
    report = Report(unit=unit, broker=names, prefix=prefix, started_ms=now_ms())
    h = Harness(broker, unit, prefix=prefix, timeout_s=timeout_s, quiet_s=quiet_s)
    if not await h.start():
        await h.stop()
        report.results = [Result(i, s, t).not_tested(f"could not connect to {report.broker} / subscribe")
                          for i, s, t, _ in ITEMS if only is None or i in only]
        report.results[0:0] = [Result("connect", "§1 Connecting", "the kit reaches the broker")
                               .failed(f"no connection to {report.broker} within {timeout_s:.0f} s")]
        if echo:
            sys.stdout.write("".join(render(r) + "\n" for r in report.results))
        return report
    ctx = Context(h, heartbeat_s=heartbeat_s, reboot=reboot, station_host=station_host, link=link)
    try:
        for item, section, title, check in ITEMS:
            if only is not None and item not in only:
                continue
            result = Result(item, section, title)
            await _run_one(ctx, result, check)
            report.results.append(result)
            if echo:
                sys.stdout.write(render(result) + "\n")
                sys.stdout.flush()
    finally:
        await _cleanup(ctx)
        await h.stop()
    return report


async def _run_one(ctx: Context, result: Result, check: Check) -> None:
    h = ctx.h
    if result.item != "birth" and not h.seen:
        result.not_tested("nothing heard from the unit so far")
        return
    t0 = time.monotonic()
    try:
        await check(ctx, result)
    except Exception as exc:  # the kit's own trouble (a lost broker link): not the unit's fault
        logger.exception("item %s", result.item)
        result.not_tested(f"the kit could not run it: {type(exc).__name__}: {exc}")
    if result.status is Status.NOT_TESTED and not result.evidence:
        result.not_tested("no verdict")
    result.seconds = round(time.monotonic() - t0, 2)


async def _cleanup(ctx: Context) -> None:
    """Withdraw the kit's retained manifests (the unit drops what it still holds of them)."""
    for b in ctx.offered:
        try:
            await ctx.h.withdraw(b)
        except Exception:  # noqa: BLE001 - best effort at the end of a run
            logger.warning("could not withdraw %s", b.bc)
