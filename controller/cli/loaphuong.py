"""The ``loaphuong`` command: serve, demo, sim, broker."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from controller.cli.db_args import add_database_args, database_overrides, settings_from
from controller.cli.own_parser import OWN_PARSER, own_parser
from controller.core.jsonlog import configure_logging, json_from_env
from devices.failover import add_broker_option

if TYPE_CHECKING:  # imported where used: `loaphuong normalize` must start fast (issue 15); so are
    # the lazy imports inside the commands below (start-up speed, not a cycle)
    from controller.settings import Settings
    from tts.vi.numbers import Dialect

logger = logging.getLogger(__name__)


def _logging(verbose: bool, json_lines: bool = False) -> None:
    """Text lines, or JSON lines with ``--log-json`` / ``LOAPHUONG_LOG_JSON`` (controller/core/jsonlog.py)."""
    env = json_from_env(os.environ.get("LOAPHUONG_LOG_JSON"))
    configure_logging(verbose=verbose, json_lines=json_lines or env)


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by command-line flags."""
    from controller.settings import Settings

    base = Settings()
    mqtt = base.mqtt.model_copy(update={k: v for k, v in (
        ("host", args.mqtt_host), ("port", args.mqtt_port),
        ("brokers", getattr(args, "brokers", None) or None)) if v is not None})
    mqtt = type(mqtt).model_validate(mqtt.model_dump())  # the --broker entries checked as the settings are
    return base.model_copy(update={"mqtt": mqtt, **database_overrides(args)})


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from controller.app import create_app
    from controller.core.web_settings import uvicorn_proxy_options

    settings = _settings(args)
    if settings.log_json:
        _logging(args.verbose, True)
    tls = _tls(args, settings)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None,
                ssl_certfile=tls[0] if tls else None, ssl_keyfile=tls[1] if tls else None,
                **uvicorn_proxy_options(settings.http))
    return 0


def _tls(args: argparse.Namespace, settings: Settings) -> tuple[str, str] | None:
    from controller.core.tls import tls_files

    return tls_files(args.tls_cert, args.tls_key,
                     settings.data_dir / "tls" if args.tls_self_signed else None)


async def _demo(args: argparse.Namespace) -> None:
    import uvicorn

    from controller.app import create_app
    from controller.cli.demo import demo_banner, demo_node_ids, demo_settings, migrate_and_seed
    from controller.cli.demo_station import DemoStation
    from controller.core.web_settings import uvicorn_proxy_options
    from devices.broker import BrokerProcess, free_port, mosquitto_path
    from devices.mqtt import BrokerAddress
    from firmware_sim.fleet import Fleet, NodeSpec

    kind = args.broker
    if kind == "auto":
        kind = "mosquitto" if mosquitto_path() else "embedded"
    broker = BrokerProcess(kind, args.broker_port or free_port(), die_with_parent=True)
    _cancel_on_sigterm()
    broker.start()
    station: DemoStation | None = None
    fleet: Fleet | None = None
    try:
        station = (await asyncio.to_thread(DemoStation)).start()
        data_dir = Path(args.data_dir or "data/demo")
        settings = demo_settings(data_dir, broker.port, station.base)
        migrate_and_seed(settings, data_dir)
        app = create_app(settings)
        tls = _tls(args, settings)
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_config=None,
                                               ssl_certfile=tls[0] if tls else None,
                                               ssl_keyfile=tls[1] if tls else None,
                                               **uvicorn_proxy_options(settings.http)))
        fleet = Fleet([NodeSpec(node_id=n) for n in demo_node_ids()], BrokerAddress(port=broker.port),
                      play_dir=data_dir / "played")
        serve = asyncio.create_task(server.serve())
        while not server.started and not serve.done():
            await asyncio.sleep(0.1)
        await fleet.start()
        pw = app.state.services.admin_password or \
            "(unchanged: the admin account already existed in this data directory)"
        web = f"{'https' if tls else 'http'}://{args.host}:{args.port}"
        sys.stderr.write(demo_banner(web, pw, f"{kind} on 127.0.0.1:{broker.port}", data_dir / "played",
                                     station.base))
        await serve
    finally:
        try:
            if station is not None:
                station.stop()
            if fleet is not None:
                await fleet.stop()
        finally:
            broker.stop()


def _cancel_on_sigterm() -> None:
    """SIGTERM stops the demo as Ctrl+C does: the main task is cancelled once, so its cleanup runs.
    (uvicorn catches SIGTERM while it serves and raises it again once it has shut down; without
    this handler that second SIGTERM killed the process before the broker was stopped.)"""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    done = False

    def cancel() -> None:
        nonlocal done
        if not done and main is not None:
            done = True
            main.cancel()

    signal.signal(signal.SIGTERM, lambda *_: loop.call_soon_threadsafe(cancel))


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_demo(args))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl+C, SIGTERM
        pass
    return 0


def _ward_dictionary(settings: Settings) -> dict[str, str]:
    """The ward's pronunciation dictionary from its database, if there is one yet."""
    from sqlalchemy.exc import SQLAlchemyError

    from controller.bulletins.dictionary import load_dictionary
    from controller.core.db import Database

    url = settings.db_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return {}
    db = Database(url)
    try:
        with db.session() as s:
            return load_dictionary(s)
    except SQLAlchemyError as exc:
        logger.warning("the ward's pronunciation dictionary was not loaded: %s", exc)
        return {}
    finally:
        db.dispose()


def _speech_input(args: argparse.Namespace) -> tuple[Settings, dict[str, str], str]:
    settings = settings_from(args)
    text = sys.stdin.read() if args.text == "-" else args.text
    return settings, ({} if args.no_dictionary else _ward_dictionary(settings)), text


# Accents of the built-in engines' voices (tts/espeak.py, tts/gtts_engine.py), so that `normalize`
# needs neither the settings nor the engines when the ward's environment names only these.
_BUILTIN_ACCENTS: dict[str, dict[str, Dialect]] = {
    "espeak-ng": {"vi": "north", "vi-vn-x-central": "central", "vi-vn-x-south": "south"},
    "gtts": {"vi": "north"},
}


def _quick_speech_input(args: argparse.Namespace) -> tuple[Dialect, dict[str, str]] | None:
    """The dialect and the top's dictionary read without the controller's settings, engines or ORM
    (the same environment variables, the same rows), or None when only the full path can tell."""
    env = os.environ
    if "LOAPHUONG_TTS" in env or "LOAPHUONG_TTS__HTTP_ENGINES" in env:
        return None
    dialect: Dialect | None = args.dialect
    if dialect is None:
        accents = _BUILTIN_ACCENTS.get(env.get("LOAPHUONG_TTS__ENGINE", "espeak-ng"))
        voice = (args.voice or env.get("LOAPHUONG_TTS__VOICE") or "vi").strip().lower()
        if accents is None or voice not in accents:
            return None
        dialect = accents[voice]
    if args.no_dictionary:
        return dialect, {}
    url = args.database_url or env.get("LOAPHUONG_DATABASE_URL") or env.get("DATABASE_URL")
    if url is not None and not url.startswith("sqlite:///"):
        return None
    data_dir = Path(args.data_dir or env.get("LOAPHUONG_DATA_DIR") or "data")
    path = Path(url.removeprefix("sqlite:///")) if url else data_dir / "loaphuong.db"
    if not path.exists():
        return dialect, {}
    try:  # the top of the tree's entries: what load_dictionary(s, None) returns
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT term, spoken FROM pronunciationentry WHERE org_unit_id IS NULL "
                                "ORDER BY term_key").fetchall()
    except sqlite3.Error:
        return None
    return dialect, {str(term): str(spoken) for term, spoken in rows}


def cmd_normalize(args: argparse.Namespace) -> int:
    """Print the spoken form of a text (warnings on stderr; --explain: the rule behind each span)."""
    from tts.vi import explain, normalize

    quick = _quick_speech_input(args)
    if quick is not None:
        dialect, dictionary = quick
        text = sys.stdin.read() if args.text == "-" else args.text
    else:
        import tts

        settings, dictionary, text = _speech_input(args)
        dialect = args.dialect
        if args.dialect is None:
            cfg = settings.tts
            cfg.register_engines()
            try:
                engine = tts.get_engine(cfg.engine)
                dialect = engine.accent(engine.resolve_voice(args.voice or cfg.voice))
            except tts.TTSError:
                dialect = "north"
    if args.explain:
        out, steps = explain(text, dialect=dialect, dictionary=dictionary)
        for step in steps:
            sys.stderr.write(f"{step.rule}: {step.written!r} → {step.spoken!r}\n")
    else:
        out = normalize(text, dialect=dialect, dictionary=dictionary)
    for warning in out.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    sys.stdout.write(out.text + "\n")
    return 0 if out.text else 1


def cmd_say(args: argparse.Namespace) -> int:
    """Render a text to an audio file through the ward's engine chain."""
    import tts
    from controller.api.speech import render_options

    settings, dictionary, text = _speech_input(args)
    out = Path(args.output)
    try:
        opts = render_options(settings.tts, priority=args.priority, voice=args.voice, engine=args.engine,
                              speed=args.speed)
        opts["codec"] = args.codec or ("opus" if out.suffix.lower() in (".opus", ".ogg") else "mp3")
        if args.bitrate:
            opts["bitrate_kbps"] = args.bitrate
        if args.repeat > 1 or args.chime:
            opts["audio"] = tts.AudioOptions(loudness_dbfs=settings.tts.loudness_dbfs,
                                             chime=args.chime or settings.tts.chime,
                                             attention=opts["audio"].attention, repeat=args.repeat)
        audio = tts.render(text, dictionary=dictionary, max_chars=settings.tts.max_chars,
                           cache_dir=None if args.no_cache else settings.cache_dir, **opts)
    except tts.TTSError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    out.write_bytes(audio.data)
    for warning in audio.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    sys.stderr.write(f"{out}: {audio.duration_ms / 1000:.2f} s, {audio.codec} {audio.bitrate_kbps} kbps, "
                     f"{len(audio.data)} bytes, {audio.engine}/{audio.voice}\n")
    return 0


def _speech_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, helptext in (("normalize", "print the spoken form of a Vietnamese text"),
                           ("say", "render a text to speech (MP3 or Opus file)")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("text", help="the text ('-' reads standard input)")
        sp.add_argument("--voice", default=None, help="voice (default: the ward's)")
        sp.add_argument("--no-dictionary", action="store_true", help="ignore the ward's dictionary")
        add_database_args(sp, "the ward's data directory (for its dictionary)")
        if name == "normalize":
            sp.add_argument("--dialect", choices=["north", "central", "south"], default=None,
                            help="number reading (default: the voice's accent)")
            sp.add_argument("--explain", action="store_true",
                            help="also list on stderr which rule read each span (to report a misreading)")
            continue
        sp.add_argument("-o", "--output", required=True, help="audio file to write (.mp3, .opus)")
        sp.add_argument("--engine", default=None, help="engine to try first (default: the ward's)")
        sp.add_argument("--speed", type=float, default=None, help="0.5-2.0 (1.0 = normal)")
        sp.add_argument("--codec", choices=["mp3", "opus"], default=None, help="default: from the file name")
        sp.add_argument("--bitrate", type=int, default=None, help="kbps (default: the ward's)")
        sp.add_argument("--priority", choices=["normal", "priority", "emergency"], default="normal",
                        help="emergency adds the attention tone")
        sp.add_argument("--chime", action="store_true", help="add the station chime before and after")
        sp.add_argument("--repeat", type=int, default=1, help="read the text N times (1-5)")
        sp.add_argument("--no-cache", action="store_true", help="always synthesise")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="loaphuong", description="Loa phường: ward public-address controller")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--log-json", action="store_true",
                    help="log one JSON object per line (also accepted after serve/demo)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, helptext in (("serve", "run the controller"), ("demo", "controller + broker + simulated ward")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--host", default="127.0.0.1")
        sp.add_argument("--port", type=int, default=8000)
        add_database_args(sp, "where SQLite, audio and cache live")
        sp.add_argument("--mqtt-host", default=None)
        sp.add_argument("--mqtt-port", type=int, default=None)
        sp.add_argument("--tls-cert", default=None, help="serve HTTPS with this PEM certificate (chain)")
        sp.add_argument("--tls-key", default=None, help="the certificate's PEM private key")
        sp.add_argument("--tls-self-signed", action="store_true",
                        help="HTTPS with a self-signed certificate kept in <data-dir>/tls (docs/live.md)")
        sp.add_argument("--log-json", action="store_true", default=argparse.SUPPRESS,
                        help="log one JSON object per line (ts, level, logger, msg, extra fields)")
        if name == "serve":
            add_broker_option(sp)
        if name == "demo":
            sp.add_argument("--broker", choices=["auto", "embedded", "mosquitto"], default="embedded",
                            help="embedded = pip-installed amqtt (default); mosquitto = system binary")
            sp.add_argument("--broker-port", type=int, default=None)
    sub.add_parser("sim", help="run simulated loudspeaker nodes against a broker (see 'sim --help')",
                   add_help=False)
    sub.add_parser("broker", help="run the embedded MQTT broker", add_help=False)
    _speech_parsers(sub)
    sub.add_parser("user", add_help=False,
                   help="accounts: user add NAME --role R [--org ID] | list | disable NAME | passwd NAME")
    sub.add_parser("org", add_help=False,
                   help="org units (province → ward): org add ID NAME [--parent P] | list")
    sub.add_parser("mqtt-config", add_help=False,
                   help="write Mosquitto passwd/acl/conf for the units (see 'mqtt-config --help')")
    sub.add_parser("gateway", add_help=False,
                   help="bridge serial-attached relay/FM boards to MQTT (see 'gateway --help')")
    sub.add_parser("unit", add_help=False,
                   help="the unit agent for Linux boards: unit setup | run | doctor | install-service")
    sub.add_parser("conformance", add_help=False,
                   help="check a unit against docs/protocol.md (see 'conformance --help')")
    sub.add_parser("backup", add_help=False, help="database + audio to a portable archive: backup FILE")
    sub.add_parser("restore", add_help=False, help="an archive into an EMPTY database: restore FILE")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    json_lines = argv[:1] == ["--log-json"]  # `loaphuong --log-json CMD ...`: any command
    argv = argv[json_lines:]
    if argv and argv[0] in OWN_PARSER:
        if argv[0] not in ("unit", "gateway", "conformance"):
            _logging(False, json_lines)
        return own_parser(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    _logging(args.verbose, json_lines or args.log_json)
    if args.cmd in ("normalize", "say"):
        if not args.verbose:
            logging.getLogger().setLevel(logging.WARNING)
        return cmd_normalize(args) if args.cmd == "normalize" else cmd_say(args)
    return {"serve": cmd_serve, "demo": cmd_demo}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
