"""Zones and loudspeaker units."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlmodel import Session, col, select

from controller.api.deps import ServicesDep, SessionDep, UserDep
from controller.api.schemas import NodeCreate, NodePublic, ZoneCreate, iso
from controller.models import Node, NodeEvent, NodeZone, Zone

router = APIRouter(prefix="/api", tags=["fleet"])


@router.get("/zones")
def list_zones(s: SessionDep, _: UserDep) -> list[dict[str, object]]:
    counts: dict[str, int] = {}
    for nz in s.exec(select(NodeZone)).all():
        counts[nz.zone_id] = counts.get(nz.zone_id, 0) + 1
    return [{"id": z.id, "name": z.name, "nodes": counts.get(z.id, 0)}
            for z in s.exec(select(Zone).order_by(Zone.id)).all()]


@router.post("/zones", status_code=status.HTTP_201_CREATED)
def create_zone(body: ZoneCreate, s: SessionDep, _: UserDep) -> dict[str, str]:
    if s.get(Zone, body.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"zone {body.id} already exists")
    s.add(Zone(id=body.id, name=body.name))
    s.commit()
    return {"id": body.id, "name": body.name}


def _public(sv: ServicesDep, node: Node, zones: list[str]) -> NodePublic:
    live = sv.presence.nodes.get(node.id)
    return NodePublic(
        id=node.id, name=node.name, zones=zones, status=sv.presence.status(node.id),
        alarm=(live.alarm if live else "") or node.alarm,
        last_seen=iso(live.last_seen_ms if live and live.last_seen_ms else node.last_seen),
        telemetry=(live.telemetry if live and live.telemetry else node.telemetry),
        lat=node.lat, lon=node.lon,
    )


def _zones_of(s: Session) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for nz in s.exec(select(NodeZone).order_by(col(NodeZone.zone_id))).all():
        out.setdefault(nz.node_id, []).append(nz.zone_id)
    return out


@router.get("/nodes", response_model=list[NodePublic])
def list_nodes(sv: ServicesDep, s: SessionDep, _: UserDep, zone: str | None = None,
               state: str | None = None) -> list[NodePublic]:
    zones = _zones_of(s)
    out = [_public(sv, n, zones.get(n.id, [])) for n in s.exec(select(Node).order_by(Node.id)).all()]
    if zone:
        out = [n for n in out if zone in n.zones]
    if state:
        out = [n for n in out if n.status == state]
    return out


@router.post("/nodes", status_code=status.HTTP_201_CREATED, response_model=NodePublic)
async def create_node(body: NodeCreate, sv: ServicesDep, _: UserDep) -> NodePublic:
    with sv.db.session() as s:
        if s.get(Node, body.id) is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"unit {body.id} already exists")
        missing = [z for z in body.zones if s.get(Zone, z) is None]
        if missing:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown zone(s): {', '.join(missing)}")
        node = Node(id=body.id, name=body.name, lat=body.lat, lon=body.lon)
        s.add(node)
        for z in dict.fromkeys(body.zones):
            s.add(NodeZone(node_id=body.id, zone_id=z))
        s.commit()
        sv.presence.load(s)
    await sv.presence.publish_configs([body.id])
    return _public(sv, node, sorted(set(body.zones)))


@router.get("/nodes/{node_id}")
def get_node(node_id: str, sv: ServicesDep, s: SessionDep, _: UserDep) -> dict[str, object]:
    node = s.get(Node, node_id)
    if node is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown unit {node_id}")
    events = s.exec(select(NodeEvent).where(NodeEvent.node_id == node_id)
                    .order_by(col(NodeEvent.at).desc()).limit(50)).all()
    return {
        **_public(sv, node, _zones_of(s).get(node_id, [])).model_dump(),
        "events": [{"kind": e.kind, "detail": e.detail, "at": iso(e.at)} for e in events],
    }
