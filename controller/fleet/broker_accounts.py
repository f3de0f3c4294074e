"""Broker accounts of the ward: issuing unit credentials and writing the Mosquitto files.

The database keeps only each unit's Mosquitto hash (:class:`~controller.fleet.models.NodeCredential`);
the password is returned once, when it is issued. :func:`write_mqtt_config` turns the unit list,
their zones and those hashes into ``passwd``, ``acl`` and ``mosquitto.conf``
(:mod:`devices.security`); ``loaphuong mqtt-config`` (controller/cli/mqtt_config.py) calls it.

Everything here takes the broker settings (:class:`MqttSettings`) and the gateway provisioning
as parameters: the fleet sits below the controller's settings.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, col, select

from controller.fleet.models import RETIRED, Node, NodeCredential, NodeZone
from controller.fleet.settings import MqttSettings
from devices import security
from devices.protocol import now_ms, valid_id

logger = logging.getLogger(__name__)

DEFAULT_CONTROLLER_USER = "loaphuong-controller"
CONTROLLER_ENV = "controller.env"
NEW_CREDENTIALS = "new-credentials.csv"


def issue_credentials(s: Session, node_id: str, *, by: str = "") -> str:
    """Create or replace the unit's broker password; returns it (the only time it is visible).

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


def reserved_ids(mqtt: MqttSettings) -> set[str]:
    """Ids no unit may have: the controller's broker user name and client id (a unit with one of
    them would collide with the controller's account or session)."""
    return {DEFAULT_CONTROLLER_USER, *([mqtt.client_id] if mqtt.client_id else []),
            *([mqtt.username] if mqtt.username else [])}


def refuse_reserved(node_id: str, mqtt: MqttSettings) -> str | None:
    """Why ``node_id`` cannot be a unit's id, or None when it can."""
    if security.reserved_id(node_id) or node_id in reserved_ids(mqtt):
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


@dataclass(frozen=True)
class Listeners:
    """Where the broker listens: ``port`` None = no plain listener (TLS only)."""
    port: int | None = 1883
    bind: str = "127.0.0.1"
    tls: security.TlsListener | None = None


def _controller_account(mqtt: MqttSettings, out: Path, report: ConfigReport) -> security.Account:
    """The controller's account: from settings, else the one kept in ``controller.env``, else new."""
    user = mqtt.username or DEFAULT_CONTROLLER_USER
    report.controller_user = user
    return _kept_account(user, mqtt.password, out / CONTROLLER_ENV, report)


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


def _zone_groups(s: Session) -> dict[str, list[str]]:
    """Each unit's zones (only ids usable as a topic level)."""
    groups: dict[str, list[str]] = {}
    for nz in s.exec(select(NodeZone)).all():
        if not valid_id(nz.zone_id):  # a row from before ids were checked: not a topic level
            logger.error("zone id %r cannot be a topic; unit %s gets no rights on it", nz.zone_id, nz.node_id)
            continue
        groups.setdefault(nz.node_id, []).append(nz.zone_id)
    return groups


def _unit_accounts(s: Session, mqtt: MqttSettings, reserved: set[str], report: ConfigReport, *,
                   issue_missing: bool) -> tuple[list[security.Account], dict[str, list[str]],
                                                 list[tuple[str, str]]]:
    """The units' accounts, their topic groups and the passwords issued now (unit, password)."""
    groups = _zone_groups(s)
    creds = {c.node_id: c.password_hash for c in s.exec(select(NodeCredential)).all()}
    issued: list[tuple[str, str]] = []
    node_groups: dict[str, list[str]] = {}
    accounts: list[security.Account] = []
    for node in s.exec(select(Node).where(col(Node.status) != RETIRED).order_by(Node.id)).all():
        why = _unusable(node.id, reserved, mqtt)
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
    return accounts, node_groups, issued


def _save_issued(s: Session, out: Path, issued: list[tuple[str, str]], report: ConfigReport) -> None:
    """Write the passwords issued now to ``new-credentials.csv``, then commit their hashes."""
    if not issued:
        return
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["node_id", "password"])
    w.writerows(issued)
    security.write_private(out / NEW_CREDENTIALS, buf.getvalue())
    s.commit()  # only after the passwords are safely written
    report.issued = [n for n, _ in issued]


def write_mqtt_config(s: Session, mqtt: MqttSettings, gateways: dict[str, list[str]], out: Path, *,
                      issue_missing: bool = False, listen: Listeners | None = None,
                      controllers: list[str] | None = None) -> ConfigReport:
    """Write ``passwd``, ``acl`` and ``mosquitto.conf`` into ``out`` from the database.

    A unit whose id cannot be a broker account (reserved, or unusable in the files) is left out
    with a loud warning: it cannot log in, and everyone else still gets their files.
    ``gateways``: each serial gateway's provisioned children. ``controllers``: accounts of further
    controllers on the same database (one each, since the broker makes every client id its user name)."""
    out = out.resolve()
    listen = listen or Listeners()
    report = ConfigReport(out)
    controller = _controller_account(mqtt, out, report)
    more = [_extra_controller(name, out, report) for name in dict.fromkeys(controllers or [])
            if name != controller.username]
    reserved = reserved_ids(mqtt) | {a.username for a in (controller, *more)}
    units, node_groups, issued = _unit_accounts(s, mqtt, reserved, report, issue_missing=issue_missing)
    passwd = security.render_passwd([controller, *more, *units])
    gws = {gw: [c for c in children if c in node_groups] for gw, children in gateways.items()
           if gw in node_groups}
    acl = security.render_acl(mqtt.prefix, controller.username, node_groups, gateways=gws,
                              more_controllers=[a.username for a in more])
    conf = security.render_conf(out, port=listen.port, bind=listen.bind, tls=listen.tls)
    _save_issued(s, out, issued, report)
    security.write_broker_files(out, passwd=passwd, acl=acl, conf=conf)
    report.nodes = len(node_groups)
    if report.without_credentials:
        logger.warning("%d node(s) have no broker credentials and cannot log in: %s "
                       "(issue them with --issue-missing or POST /api/nodes/{id}/credentials)",
                       len(report.without_credentials), ", ".join(report.without_credentials[:20]))
    return report


def _unusable(node_id: str, reserved: set[str], mqtt: MqttSettings) -> str | None:
    if node_id in reserved or security.reserved_id(node_id):
        return refuse_reserved(node_id, mqtt) or f"unit id {node_id!r} is reserved"
    try:
        security.Account(node_id, "$7$1$AA==$AA==")  # the same checks the password file gets
    except security.SecurityError as exc:
        return str(exc)
    if not valid_id(node_id):
        return f"invalid unit id {node_id!r}"
    return None
