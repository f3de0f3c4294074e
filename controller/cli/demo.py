"""The demo ward: 3 hamlet zones with 4 loudspeaker units each, plus its simulated fleet."""

from __future__ import annotations

import logging

from sqlmodel import Session

from controller.fleet.models import Node, NodeZone, Zone

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
