"""Broker accounts of the ward: issuing node credentials and writing the Mosquitto files.

The database keeps only each node's Mosquitto hash (:class:`~controller.models.NodeCredential`);
the password is returned once, when it is issued. ``loaphuong mqtt-config`` turns the node list,
their zones and those hashes into ``passwd``, ``acl`` and ``mosquitto.conf``
(:mod:`devices.security`).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, col, select

from controller.fleet.models import RETIRED, Node, NodeCredential, NodeZone
from controller.settings import Settings
from devices import security
from devices.protocol import now_ms, valid_id

logger = logging.getLogger(__name__)

DEFAULT_CONTROLLER_USER = "loaphuong-controller"
CONTROLLER_ENV = "controller.env"
NEW_CREDENTIALS = "new-credentials.csv"


def issue_credentials(s: Session, node_id: str, *, by: str = "") -> str:
    """Create or replace the node's broker password; returns it (the only time it is visible).

    The caller commits. The broker accepts it after ``loaphuong mqtt-config`` and a SIGHUP."""
    password = security.new_password()
    cred = s.get(NodeCredential, node_id)
    if cred is None:
        cred = NodeCredential(node_id=node_id, password_hash="")
    cred.password_hash = security.mosquitto_hash(password)
    cred.issued_by = by
    cred.issued_at = now_ms()
    s.add(cred)
    logger.info("issued broker credentials for node %s", node_id)
    return password


def reserved_ids(settings: Settings) -> set[str]:
    """Ids no unit may have: the controller's broker user name and client id (a unit with one of
    them would collide with the controller's account or session)."""
    m = settings.mqtt
    return {DEFAULT_CONTROLLER_USER, m.client_id, *([m.username] if m.username else [])}


def refuse_reserved(node_id: str, settings: Settings) -> str | None:
    """Why ``node_id`` cannot be a unit's id, or None when it can."""
    if security.reserved_id(node_id) or node_id in reserved_ids(settings):
        return (f"unit id {node_id!r} is reserved: it names the controller's broker account or client id "
                f"(ids starting with {security.RESERVED_PREFIX!r} are reserved too)")
    return None


@dataclass
class ConfigReport:
    directory: Path
    nodes: int = 0
    issued: list[str] = field(default_factory=list)
    without_credentials: list[str] = field(default_factory=list)
    #: units left out of the files, with the reason (a reserved or unusable id)
    skipped: dict[str, str] = field(default_factory=dict)
    controller_user: str = DEFAULT_CONTROLLER_USER
    controller_password_file: Path | None = None


def _controller_account(settings: Settings, out: Path, report: ConfigReport) -> security.Account:
    """The controller's account: from settings, else the one kept in ``controller.env``, else new."""
    user = settings.mqtt.username or DEFAULT_CONTROLLER_USER
    report.controller_user = user
    return _kept_account(user, settings.mqtt.password, out / CONTROLLER_ENV, report)


def _extra_controller(name: str, out: Path, report: ConfigReport) -> security.Account:
    """One more controller sharing the database (docs/scheduling.md): its own account, whose user
    name is also its client id (the broker pins it), kept in ``controller-<name>.env``."""
    if not (valid_id(name) and security.reserved_id(name)):
        raise security.SecurityError(
            f"controller account {name!r}: use 1-63 lowercase letters, digits, '-' or '_' starting with "
            f"{security.RESERVED_PREFIX!r} (reserved: no unit can have it)")
    return _kept_account(name, None, out / f"controller-{name}.env", report, client_id=name)


def _kept_account(user: str, password: str | None, env: Path, report: ConfigReport, *,
                  client_id: str | None = None) -> security.Account:
    if password is None and env.exists():
        values = dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line)
        if values.get("LOAPHUONG_MQTT__USERNAME") == user:
            password = values.get("LOAPHUONG_MQTT__PASSWORD") or None
    if password is None:
        password = security.new_password()
        text = f"LOAPHUONG_MQTT__USERNAME={user}\nLOAPHUONG_MQTT__PASSWORD={password}\n"
        if client_id is not None:
            text += f"LOAPHUONG_MQTT__CLIENT_ID={client_id}\n"
        security.write_private(env, text)
        report.controller_password_file = env
        logger.warning("generated the broker password of controller account %s; it is in %s "
                       "(load it into that controller's environment)", user, env)
    return security.Account(user, security.mosquitto_hash(password))


def write_mqtt_config(s: Session, settings: Settings, out: Path, *, issue_missing: bool = False,
                      port: int | None = 1883, bind: str = "127.0.0.1",
                      tls: security.TlsListener | None = None,
                      controllers: list[str] | None = None) -> ConfigReport:
    """Write ``passwd``, ``acl`` and ``mosquitto.conf`` into ``out`` from the database.

    A unit whose id cannot be a broker account (reserved, or unusable in the files) is left out
    with a loud warning: it cannot log in, and everyone else still gets their files.
    ``controllers``: accounts of further controllers on the same database (one each, since the
    broker makes every client id its user name)."""
    out = out.resolve()
    report = ConfigReport(out)
    controller = _controller_account(settings, out, report)
    more = [_extra_controller(name, out, report) for name in dict.fromkeys(controllers or [])
            if name != controller.username]
    groups: dict[str, list[str]] = {}
    for nz in s.exec(select(NodeZone)).all():
        if not valid_id(nz.zone_id):  # a row from before ids were checked: not a topic level
            logger.error("zone id %r cannot be a topic; unit %s gets no rights on it", nz.zone_id, nz.node_id)
            continue
        groups.setdefault(nz.node_id, []).append(nz.zone_id)
    creds = {c.node_id: c.password_hash for c in s.exec(select(NodeCredential)).all()}
    issued: list[tuple[str, str]] = []
    node_groups: dict[str, list[str]] = {}
    accounts = [controller, *more]
    reserved = reserved_ids(settings) | {a.username for a in accounts}
    for node in s.exec(select(Node).where(col(Node.status) != RETIRED).order_by(Node.id)).all():
        why = _unusable(node.id, reserved, settings)
        if why is not None:
            report.skipped[node.id] = why
            logger.error("unit %r is left out of the broker files and cannot log in: %s", node.id, why)
            continue
        if node.id not in creds:
            if not issue_missing:
                report.without_credentials.append(node.id)
                continue
            issued.append((node.id, issue_credentials(s, node.id, by="mqtt-config")))
            s.flush()
            creds[node.id] = s.get(NodeCredential, node.id).password_hash  # type: ignore[union-attr]
        node_groups[node.id] = ["all", *groups.get(node.id, [])]
        accounts.append(security.Account(node.id, creds[node.id]))
    passwd = security.render_passwd(accounts)
    gateways = {gw: [c for c in children if c in node_groups]
                for gw, children in settings.gateways.items() if gw in node_groups}
    acl = security.render_acl(settings.mqtt.prefix, controller.username, node_groups, gateways=gateways,
                              more_controllers=[a.username for a in more])
    conf = security.render_conf(out, port=port, bind=bind, tls=tls)
    if issued:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["node_id", "password"])
        w.writerows(issued)
        security.write_private(out / NEW_CREDENTIALS, buf.getvalue())
        s.commit()  # only after the passwords are safely written
        report.issued = [n for n, _ in issued]
    security.write_broker_files(out, passwd=passwd, acl=acl, conf=conf)
    report.nodes = len(node_groups)
    if report.without_credentials:
        logger.warning("%d node(s) have no broker credentials and cannot log in: %s "
                       "(issue them with --issue-missing or POST /api/nodes/{id}/credentials)",
                       len(report.without_credentials), ", ".join(report.without_credentials[:20]))
    return report


def _unusable(node_id: str, reserved: set[str], settings: Settings) -> str | None:
    if node_id in reserved or security.reserved_id(node_id):
        return refuse_reserved(node_id, settings) or f"unit id {node_id!r} is reserved"
    try:
        security.Account(node_id, "$7$1$AA==$AA==")  # the same checks the password file gets
    except security.SecurityError as exc:
        return str(exc)
    if not valid_id(node_id):
        return f"invalid unit id {node_id!r}"
    return None


def main(argv: list[str] | None = None) -> int:
    """``loaphuong mqtt-config``: write the Mosquitto files for the ward's units."""
    import argparse

    from controller.core.db import Database

    ap = argparse.ArgumentParser(
        prog="loaphuong mqtt-config",
        description="Write a Mosquitto configuration (passwd, acl, mosquitto.conf) where anonymous "
                    "clients are refused and each unit may publish only its own topics and read only "
                    "its own and its zones' command and audio topics (docs/security.md).")
    ap.add_argument("--out", required=True, type=Path,
                    help="directory for the files (e.g. /etc/mosquitto/lp)")
    ap.add_argument("--data-dir", default=None, help="the controller's data directory")
    ap.add_argument("--database-url", default=None)
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
    args = ap.parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    tls = None
    if args.tls_port is not None:
        if not (args.certfile and args.keyfile):
            ap.error("--tls-port needs --certfile and --keyfile")
        tls = security.TlsListener(args.tls_port, args.certfile, args.keyfile, args.cafile,
                                   bind=args.tls_bind)
    update: dict[str, object] = {}
    if args.data_dir:
        update["data_dir"] = Path(args.data_dir)
    if args.database_url:
        update["database_url"] = args.database_url
    settings = Settings().model_copy(update=update)
    db = Database(settings.db_url)
    try:
        db.migrate()
        with db.session() as s:
            report = write_mqtt_config(s, settings, args.out, issue_missing=args.issue_missing,
                                       port=args.port or None, bind=args.bind, tls=tls,
                                       controllers=args.controller)
    except (security.SecurityError, OSError) as exc:
        logger.error("mqtt-config failed: %s", exc)
        return 1
    finally:
        db.dispose()
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
    return 0
