"""``loaphuong conformance``: the contract test kit, from the command line (docs/conformance.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from devices.conformance.kit import ITEMS, run_kit
from devices.conformance.link import KitLink
from devices.conformance.report import Report, summary
from devices.failover import add_broker_option, brokers_from, parse_brokers
from devices.mqtt import BrokerAddress
from devices.mqtt_types import Brokers, broker_list


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="loaphuong conformance",
        description="Check that a loudspeaker unit connected to a broker speaks docs/protocol.md: "
                    "the kit plays the controller and prints PASS / FAIL / NOT TESTED per item.")
    ap.add_argument("--host", default="127.0.0.1", help="the broker the unit is connected to")
    ap.add_argument("--port", type=int, default=1883)
    add_broker_option(ap)
    ap.add_argument("--username", default=None, help="the kit's broker login (a controller's ACL)")
    ap.add_argument("--password", default=None)
    ap.add_argument("--tls", action="store_true", help="connect with TLS")
    ap.add_argument("--ca-file", default=None, help="CA certificate for --tls")
    ap.add_argument("--unit", required=True, help="the node id of the unit under test")
    ap.add_argument("--prefix", default="lp", help="topic prefix (default lp)")
    ap.add_argument("--json", type=Path, default=None, help="also write the report (one JSON object) here")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each expected message")
    ap.add_argument("--quiet", type=float, default=3.0,
                    help="seconds to wait for what must NOT happen (a second answer, an execution)")
    ap.add_argument("--heartbeat-s", type=float, default=15.0, help="the unit's heartbeat period (§1: 15 s)")
    ap.add_argument("--no-reboot", action="store_true",
                    help="do not send `reboot` (item shutdown: NOT TESTED)")
    ap.add_argument("--station-host", default="",
                    help="the address the unit reaches this machine at, for the relay item's test station "
                         "(default: this machine's address toward the broker)")
    ap.add_argument("--listen", default=None, metavar="HOST:PORT",
                    help="link mode: the kit listens here and forwards to the broker; point the unit at "
                         "this address (items last_will and credentials need it)")
    ap.add_argument("--only", default=None,
                    help=f"comma-separated items to run (default all): {','.join(i for i, *_ in ITEMS)}")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when no item FAILed, 1 when one did, 2 on bad arguments."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    only = set(args.only.split(",")) if args.only else None
    known = {i for i, *_ in ITEMS}
    if only is not None and not only <= known:
        logging.error("unknown items: %s (known: %s)", sorted(only - known), sorted(known))
        return 2
    try:
        one = BrokerAddress(host=args.host, port=args.port, username=args.username, password=args.password,
                            tls=args.tls, ca_file=args.ca_file)
        broker = brokers_from(args.brokers, one)
        listen = parse_brokers(args.listen)[0] if args.listen else None
    except ValueError as exc:
        logging.error("%s", exc)
        return 2
    sys.stdout.write(f"loaphuong conformance: unit {args.unit} on {','.join(map(str, broker))}, "
                     f"prefix {args.prefix}\n")
    sys.stdout.flush()
    try:
        report = asyncio.run(_run(args, broker, only, listen))
    except OSError as exc:
        logging.error("cannot listen on %s: %s", args.listen, exc)
        return 2
    sys.stdout.write(summary(report) + "\n")
    sys.stdout.flush()
    if args.json is not None:
        args.json.write_text(report.dumps() + "\n", encoding="utf-8")
    return 0 if report.ok else 1


async def _run(args: argparse.Namespace, broker: Brokers, only: set[str] | None,
               listen: tuple[str, int] | None) -> Report:
    link = None if listen is None else KitLink(listen[0], listen[1], broker_list(broker)[0])
    if link is not None:
        await link.start()
        sys.stdout.write(f"link mode: the unit connects to {link.host}:{link.port} (forwarded to "
                         f"{link.upstream})\n")
        sys.stdout.flush()
    try:
        return await run_kit(broker, args.unit, prefix=args.prefix, timeout_s=args.timeout,
                             quiet_s=args.quiet,
                             heartbeat_s=args.heartbeat_s, reboot=not args.no_reboot, only=only, echo=True,
                             station_host=args.station_host, link=link)
    finally:
        if link is not None:
            await link.close()
