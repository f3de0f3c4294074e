"""``loaphuong gateway``: run a serial gateway until SIGINT/SIGTERM, then stop cleanly.

Example (a USB RS-485 adapter, boards at addresses 1-4, a local broker)::

    loaphuong gateway --id gw1 --port /dev/serial/by-id/usb-FTDI-if00 --baud 9600 --children 1-4
    loaphuong gateway --id gw1 --port socket://10.0.0.7:4001 --child 5=tdp4-wired --mqtt-host broker

Try it without hardware: ``python -m firmware_sim.serial_node --pty --addr 1-4 --link /tmp/ttyLP``
in one terminal, then ``loaphuong gateway --id gw1 --port /tmp/ttyLP --children 1-4``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from devices.failover import add_broker_option, brokers_from
from devices.mqtt import BrokerAddress
from devices.serial.contract import GatewayConfig, child_id
from devices.serial.gateway import SerialGateway

logger = logging.getLogger(__name__)


def parse_children(gateway_id: str, singles: list[str], ranges: list[str]) -> dict[int, str]:
    """``--child 5`` / ``--child 5=tdp4-wired`` and ``--children 1-4,7`` -> {address: node id}."""
    out: dict[int, str] = {}
    for spec in ranges:
        for part in spec.split(","):
            lo, _, hi = part.strip().partition("-")
            for addr in range(int(lo), int(hi or lo) + 1):
                out[addr] = child_id(gateway_id, addr)
    for spec in singles:
        head, _, node_id = spec.partition("=")
        out[int(head)] = node_id or child_id(gateway_id, int(head))
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="loaphuong gateway",
                                 description="bridge serial-attached relay/FM boards to MQTT")
    ap.add_argument("--id", required=True, help="the gateway's node id, e.g. gw1")
    ap.add_argument("--port", required=True,
                    help="serial device or pyserial URL: /dev/ttyUSB0, /dev/pts/3, socket://host:port, loop://")
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--child", action="append", default=[], metavar="ADDR[=NODE_ID]",
                    help="a child board (repeatable); node id defaults to <id>-aNN")
    ap.add_argument("--children", action="append", default=[], metavar="RANGES",
                    help="child addresses with default node ids, e.g. 1-8 or 1,2,5")
    ap.add_argument("--mqtt-host", default=os.environ.get("LOAPHUONG_MQTT__HOST", "127.0.0.1"))
    ap.add_argument("--mqtt-port", type=int, default=int(os.environ.get("LOAPHUONG_MQTT__PORT", "1883")))
    add_broker_option(ap)
    ap.add_argument("--mqtt-username", default=None, help="default: the gateway id when a password is set")
    ap.add_argument("--prefix", default="lp", help="MQTT topic prefix")
    ap.add_argument("--poll", type=float, default=1.0, help="seconds between polls of each child")
    ap.add_argument("--reply-timeout", type=float, default=0.2, help="seconds to wait for a board's reply")
    ap.add_argument("--play-dir", type=Path, default=None, help="write the audio played on the line here")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


async def run(gateway: SerialGateway) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    try:
        await stop.wait()
    finally:
        await gateway.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    password = os.environ.get("LOAPHUONG_GATEWAY_PASSWORD")
    username = args.mqtt_username or (args.id if password else None)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    try:
        children = parse_children(args.id, args.child, args.children)
        broker = brokers_from(args.brokers, BrokerAddress(host=args.mqtt_host, port=args.mqtt_port,
                                                          username=username, password=password))
        config = GatewayConfig(gateway_id=args.id, port=args.port, children=children, baudrate=args.baud,
                               prefix=args.prefix, poll_s=args.poll, reply_timeout=args.reply_timeout,
                               play_dir=args.play_dir)
    except ValueError as exc:
        logger.error("invalid gateway settings: %s", exc)
        return 2
    logger.info("gateway %s on %s: children %s; MQTT %s", args.id, args.port,
                ", ".join(f"{a}={n}" for a, n in sorted(children.items())), ",".join(map(str, broker)))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(SerialGateway(config, broker)))
    return 0
