"""The ``loaphuong`` command: serve, demo, sim, broker."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from pathlib import Path

from controller.settings import MqttSettings, Settings

logger = logging.getLogger(__name__)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("amqtt", "transitions", "apscheduler.executors", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by command-line flags."""
    base = Settings()
    mqtt = base.mqtt.model_copy(update={k: v for k, v in (
        ("host", args.mqtt_host), ("port", args.mqtt_port)) if v is not None})
    update: dict[str, object] = {"mqtt": mqtt}
    if args.data_dir:
        update["data_dir"] = Path(args.data_dir)
    if args.database_url:
        update["database_url"] = args.database_url
    return base.model_copy(update=update)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from controller.app import create_app

    settings = _settings(args)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None)
    return 0


async def _demo(args: argparse.Namespace) -> None:
    import uvicorn

    from controller.app import create_app
    from controller.db import Database
    from controller.demo import demo_node_ids, seed_demo
    from devices.broker import BrokerProcess, free_port, mosquitto_path
    from devices.mqtt import BrokerAddress
    from firmware_sim.fleet import Fleet, NodeSpec

    kind = args.broker
    if kind == "auto":
        kind = "mosquitto" if mosquitto_path() else "embedded"
    broker = BrokerProcess(kind, args.broker_port or free_port())
    broker.start()
    data_dir = Path(args.data_dir or "data/demo")
    settings = Settings(
        data_dir=data_dir, mqtt=MqttSettings(port=broker.port),  # type: ignore[call-arg]
        admin_password=os.environ.get("LOAPHUONG_ADMIN_PASSWORD") or secrets.token_urlsafe(9),
    )
    db = Database(settings.db_url)
    data_dir.mkdir(parents=True, exist_ok=True)
    db.migrate()
    with db.session() as s:
        seed_demo(s)
    db.dispose()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_config=None))
    specs = [NodeSpec(node_id=n) for n in demo_node_ids()]
    fleet = Fleet(specs, BrokerAddress(port=broker.port), play_dir=data_dir / "played")
    serve = asyncio.create_task(server.serve())
    while not server.started and not serve.done():
        await asyncio.sleep(0.1)
    await fleet.start()
    sv = app.state.services
    pw = sv.admin_password or "(unchanged: the admin account already existed in this data directory)"
    banner = (
        "\n  loaphuong demo is running\n"
        f"  web:     http://{args.host}:{args.port}/    API docs: http://{args.host}:{args.port}/docs\n"
        f"  login:   admin / {pw}\n"
        f"  broker:  {kind} on 127.0.0.1:{broker.port}\n"
        f"  ward:    3 zones (tdp1, tdp2, tdp3) x 4 simulated units; played audio in {data_dir / 'played'}\n"
        "  Ctrl+C to stop.\n"
    )
    sys.stderr.write(banner)
    try:
        await serve
    finally:
        await fleet.stop()
        broker.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_demo(args))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_sim(rest: list[str]) -> int:
    from firmware_sim.fleet import main as sim_main

    return sim_main(rest)


def cmd_broker(rest: list[str]) -> int:
    from devices.broker import main as broker_main

    return broker_main(rest)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="loaphuong", description="Loa phường: ward public-address controller")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, helptext in (("serve", "run the controller"), ("demo", "controller + broker + simulated ward")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--host", default="127.0.0.1")
        sp.add_argument("--port", type=int, default=8000)
        sp.add_argument("--data-dir", default=None, help="where SQLite, audio and cache live")
        sp.add_argument("--database-url", default=None, help="e.g. postgresql://user@host/db")
        sp.add_argument("--mqtt-host", default=None)
        sp.add_argument("--mqtt-port", type=int, default=None)
        if name == "demo":
            sp.add_argument("--broker", choices=["auto", "embedded", "mosquitto"], default="embedded",
                            help="embedded = pip-installed amqtt (default); mosquitto = system binary")
            sp.add_argument("--broker-port", type=int, default=None)
    sub.add_parser("sim", help="run simulated loudspeaker nodes against a broker (see 'sim --help')",
                   add_help=False)
    sub.add_parser("broker", help="run the embedded MQTT broker", add_help=False)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("sim", "broker"):
        _logging(False)
        return cmd_sim(argv[1:]) if argv[0] == "sim" else cmd_broker(argv[1:])
    args = build_parser().parse_args(argv)
    _logging(args.verbose)
    return {"serve": cmd_serve, "demo": cmd_demo}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
