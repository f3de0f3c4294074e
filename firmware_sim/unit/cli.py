"""``loaphuong unit setup | run | doctor | install-service`` (docs/unit.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from firmware_sim.unit.state import (
    AudioSettings,
    BadUnitConfig,
    PowerSettings,
    UnitConfig,
    load_config,
    save_config,
)

logger = logging.getLogger(__name__)

DEFAULT_STATE = "/var/lib/loaphuong-unit"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="loaphuong unit",
                                 description="the loudspeaker unit agent (docs/unit.md)")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    setup = sub.add_parser("setup", help="write the unit's configuration (unit.json, mode 0600)")
    setup.add_argument("--state-dir", default=DEFAULT_STATE)
    setup.add_argument("--node-id", required=True)
    setup.add_argument("--broker", action="append", required=True, help="host:port (repeat for several)")
    setup.add_argument("--username")
    setup.add_argument("--password")
    setup.add_argument("--password-file", help="read the password from this file")
    setup.add_argument("--prefix", default="lp")
    setup.add_argument("--tls", action="store_true")
    setup.add_argument("--ca-file")
    setup.add_argument("--heartbeat-s", type=float, default=15.0)
    setup.add_argument("--output", choices=["pulse", "null"], default="pulse")
    setup.add_argument("--pulse-server", help="e.g. unix:/run/user/1000/pulse/native")
    setup.add_argument("--sink", help="the sink to play on (default: the server's default sink)")
    setup.add_argument("--mixer", choices=["pulse", "alsa", "software"], default="pulse")
    setup.add_argument("--power", choices=["none", "gpio", "command"], default="none")
    setup.add_argument("--gpio-chip", default="/dev/gpiochip0")
    setup.add_argument("--gpio-line", type=int, default=17)
    setup.add_argument("--gpio-active-low", action="store_true")
    setup.add_argument("--fault-line", type=int)
    setup.add_argument("--power-on-cmd", help="command: the argv that switches the amplifier on")
    setup.add_argument("--power-off-cmd", help="command: the argv that switches it off")
    for name, text in (("run", "run the unit"),
                       ("doctor", "check the sound card, broker, credentials, clock")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--state-dir", default=DEFAULT_STATE)
        if name == "doctor":
            sp.add_argument("--no-tone", action="store_true", help="do not play the test tone")
            sp.add_argument("--timeout", type=float, default=10.0)
    svc = sub.add_parser("install-service", help="write the systemd unit file")
    svc.add_argument("--state-dir", default=DEFAULT_STATE)
    svc.add_argument("--user", default="", help="run as this user (its PulseAudio/PipeWire session)")
    svc.add_argument("--path", default="/etc/systemd/system/loaphuong-unit.service")
    svc.add_argument("--print", action="store_true", help="print the file instead of writing it")
    return ap


def _setup(args: argparse.Namespace) -> int:
    password = args.password
    if args.password_file:
        password = Path(args.password_file).read_text(encoding="utf-8").strip()
    try:
        cfg = UnitConfig(
            node_id=args.node_id, prefix=args.prefix, brokers=args.broker, username=args.username,
            password=password, tls=args.tls, ca_file=args.ca_file, heartbeat_s=args.heartbeat_s,
            audio=AudioSettings(output=args.output, server=args.pulse_server, sink=args.sink,
                                mixer=args.mixer),
            power=PowerSettings(driver=args.power, chip=args.gpio_chip, line=args.gpio_line,
                                active_low=args.gpio_active_low, fault_line=args.fault_line,
                                on_cmd=(args.power_on_cmd or "").split(),
                                off_cmd=(args.power_off_cmd or "").split()),
        )
        cfg.broker_addresses()
    except (ValueError, BadUnitConfig) as exc:
        print(f"loaphuong unit setup: {exc}", file=sys.stderr)
        return 2
    path = save_config(Path(args.state_dir), cfg)
    print(f"wrote {path}")
    return 0


async def _run(state_dir: Path) -> int:
    from firmware_sim.unit.agent import UnitAgent
    from firmware_sim.unit.power import PowerSetupError

    try:
        agent = UnitAgent(state_dir)
    except (BadUnitConfig, PowerSetupError) as exc:
        logger.error("%s", exc)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.run_forever(stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state_dir = Path(args.state_dir)
    if args.cmd == "setup":
        return _setup(args)
    if args.cmd == "run":
        return asyncio.run(_run(state_dir))
    if args.cmd == "doctor":
        from firmware_sim.unit.doctor import doctor

        try:
            cfg = load_config(state_dir)
        except BadUnitConfig as exc:
            print(f"FAIL config: {exc}")
            return 1
        return asyncio.run(doctor(cfg, tone=not args.no_tone, timeout_s=args.timeout))
    from firmware_sim.unit.service import install_service

    return install_service(state_dir, user=args.user, path=Path(args.path), show=args.print)
