"""``loaphuong mqtt-config``: write the Mosquitto files (passwd, acl, mosquitto.conf) for the
ward's units. The accounts and files themselves are made in controller/fleet/broker_accounts.py."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from controller.cli.db_args import add_database_args, settings_from
from controller.core.db import Database
from controller.fleet.broker_accounts import NEW_CREDENTIALS, ConfigReport, Listeners, write_mqtt_config
from devices import security

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="loaphuong mqtt-config",
        description="Write a Mosquitto configuration (passwd, acl, mosquitto.conf) where anonymous "
                    "clients are refused and each unit may publish only its own topics and read only "
                    "its own and its zones' command and audio topics (docs/security.md).")
    ap.add_argument("--out", required=True, type=Path,
                    help="directory for the files (e.g. /etc/mosquitto/lp)")
    add_database_args(ap, "the controller's data directory")
    ap.add_argument("--issue-missing", action="store_true",
                    help="issue credentials to units that have none; written once to new-credentials.csv")
    ap.add_argument("--port", type=int, default=1883,
                    help="plain MQTT listener port (0: no plain listener, e.g. TLS only)")
    ap.add_argument("--bind", default="127.0.0.1",
                    help="address of the plain listener (default 127.0.0.1; '' = every address)")
    ap.add_argument("--controller", action="append", default=[], metavar="NAME",
                    help="one more controller sharing the database (repeat for each): its own account "
                         "NAME (starting with 'loaphuong-'), kept in controller-NAME.env")
    ap.add_argument("--tls-port", type=int, default=None, help="add a TLS listener on this port")
    ap.add_argument("--tls-bind", default="", help="address of the TLS listener (default: every address)")
    ap.add_argument("--certfile", default=None)
    ap.add_argument("--keyfile", default=None)
    ap.add_argument("--cafile", default=None)
    return ap


def _log_report(report: ConfigReport) -> None:
    logger.info("wrote %s/{passwd,acl,mosquitto.conf}: controller account %r and %d unit(s); "
                "reload Mosquitto (kill -HUP <pid>) to apply", report.directory, report.controller_user,
                report.nodes)
    if report.skipped:
        logger.error("left out %d unit(s) with an id that cannot be a broker account: %s (they cannot "
                     "log in; give them another id)", len(report.skipped), ", ".join(report.skipped))
    if report.issued:
        logger.warning("issued credentials to %d unit(s); passwords in %s (shown once: move them to "
                       "the units, then delete the file)", len(report.issued),
                       report.directory / NEW_CREDENTIALS)


def main(argv: list[str] | None = None) -> int:
    """``loaphuong mqtt-config``: write the Mosquitto files for the ward's units."""
    ap = _parser()
    args = ap.parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    tls = None
    if args.tls_port is not None:
        if not (args.certfile and args.keyfile):
            ap.error("--tls-port needs --certfile and --keyfile")
        tls = security.TlsListener(args.tls_port, args.certfile, args.keyfile, args.cafile,
                                   bind=args.tls_bind)
    settings = settings_from(args)
    db = Database(settings.db_url)
    try:
        db.migrate(settings.data_dir)
        with db.session() as s:
            report = write_mqtt_config(s, settings.mqtt, settings.gateways, args.out,
                                       issue_missing=args.issue_missing,
                                       listen=Listeners(args.port or None, args.bind, tls),
                                       controllers=args.controller)
    except (security.SecurityError, OSError) as exc:
        logger.error("mqtt-config failed: %s", exc)
        return 1
    finally:
        db.dispose()
    _log_report(report)
    return 0
