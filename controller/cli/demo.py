"""The demo ward: 3 hamlet zones with 4 loudspeaker units each, plus its simulated fleet; the demo's
settings, database and banner (``loaphuong demo``, run by :mod:`controller.cli.loaphuong`)."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from sqlmodel import Session

from controller.core.db import Database
from controller.fleet.models import Node, NodeZone, Zone
from controller.fleet.settings import MqttSettings
from controller.relays.settings import RelaySettings
from controller.settings import Settings

logger = logging.getLogger(__name__)

ZONES = [("tdp1", "Tổ dân phố 1"), ("tdp2", "Tổ dân phố 2"), ("tdp3", "Thôn Đông")]
NODES_PER_ZONE = 4
# Ngô Quyền ward, Vĩnh Yên: roughly where the pilot was
_BASE = (21.3089, 105.6049)


def demo_node_ids() -> dict[str, str]:
    """node id → zone id."""
    return {f"{z}-{i:02d}": z for z, _ in ZONES for i in range(1, NODES_PER_ZONE + 1)}


def seed_demo(s: Session) -> int:
    """Create the demo zones and nodes if missing; return how many nodes were added."""
    added = 0
    for zid, name in ZONES:
        if s.get(Zone, zid) is None:
            s.add(Zone(id=zid, name=name))
    s.flush()
    for n, (node_id, zid) in enumerate(demo_node_ids().items()):
        if s.get(Node, node_id) is not None:
            continue
        zname = dict(ZONES)[zid]
        lat = _BASE[0] + 0.002 * (n // NODES_PER_ZONE)
        lon = _BASE[1] + 0.0015 * (n % NODES_PER_ZONE)
        s.add(Node(id=node_id, name=f"{zname} – loa {node_id[-2:]}", lat=lat, lon=lon))
        s.flush()
        s.add(NodeZone(node_id=node_id, zone_id=zid))
        added += 1
    s.commit()
    if added:
        logger.info("demo ward seeded with %d units in %d zones", added, len(ZONES))
    return added


def demo_settings(data_dir: Path, broker_port: int, station_base: str) -> Settings:
    """The demo's settings: its own broker and test radio station, a generated admin password."""
    return Settings(
        data_dir=data_dir, mqtt=MqttSettings(port=broker_port),  # type: ignore[call-arg]
        admin_password=os.environ.get("LOAPHUONG_ADMIN_PASSWORD") or secrets.token_urlsafe(9),
        relay=RelaySettings(allowed_stations=[station_base]),  # its own station, on 127.0.0.1
    )


def migrate_and_seed(settings: Settings, data_dir: Path) -> None:
    """Migrate the demo's database and add its ward (zones, units) when missing."""
    db = Database(settings.db_url)
    data_dir.mkdir(parents=True, exist_ok=True)
    db.migrate(settings.data_dir)
    with db.session() as s:
        seed_demo(s)
    db.dispose()


def demo_banner(web: str, password: str, broker: str, played: Path, station_base: str) -> str:
    """What ``loaphuong demo`` prints once it runs: where to log in, the broker, the test station."""
    return (
        "\n  loaphuong demo is running\n"
        f"  web:     {web}/    API docs: {web}/docs\n"
        f"  login:   admin / {password}\n"
        f"  broker:  {broker}\n"
        f"  ward:    3 zones (tdp1, tdp2, tdp3) x 4 simulated units; played audio in {played}\n"
        f"  radio:   a test station to relay (Tiếp sóng): {station_base}/radio.mp3"
        f" or {station_base}/hls/live.m3u8\n"
        "  Ctrl+C to stop.\n"
    )
