"""Zones and loudspeaker units."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from sqlmodel import Session, col, select

from controller.accounts import audit, visible_zones
from controller.api.deps import AdminDep, ServicesDep, SessionDep, UserDep
from controller.api.schemas import MqttCredentials, NodeCreate, NodeCreated, NodePublic, ZoneCreate, iso
from controller.api.scope import node_for
from controller.models import Node, NodeEvent, NodeZone, OrgUnit, Zone
from controller.mqtt_accounts import issue_credentials, refuse_reserved
from controller.nodedir import NodeDirectory

router = APIRouter(prefix="/api", tags=["fleet"])


@router.get("/zones")
def list_zones(s: SessionDep, user: UserDep) -> list[dict[str, object]]:
    counts: dict[str, int] = {}
    for nz in s.exec(select(NodeZone)).all():
        counts[nz.zone_id] = counts.get(nz.zone_id, 0) + 1
    mine = visible_zones(s, user)
    return [{"id": z.id, "name": z.name, "nodes": counts.get(z.id, 0), "org_unit_id": z.org_unit_id}
            for z in s.exec(select(Zone).order_by(Zone.id)).all() if mine is None or z.id in mine]


@router.post("/zones", status_code=status.HTTP_201_CREATED)
def create_zone(body: ZoneCreate, s: SessionDep, admin: AdminDep) -> dict[str, str]:
    if s.get(Zone, body.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"zone {body.id} already exists")
    if body.org_unit_id is not None and s.get(OrgUnit, body.org_unit_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown org unit {body.org_unit_id}")
    s.add(Zone(id=body.id, name=body.name, org_unit_id=body.org_unit_id))
    s.commit()
    audit(s, admin.username, "zone_add", body.id, f"org={body.org_unit_id}")
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


def _zones_of(s: Session, node_id: str | None = None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    q = select(NodeZone) if node_id is None else select(NodeZone).where(NodeZone.node_id == node_id)
    for nz in s.exec(q.order_by(col(NodeZone.zone_id))).all():
        out.setdefault(nz.node_id, []).append(nz.zone_id)
    return out


def _directory(request: Request) -> NodeDirectory:
    state = request.app.state
    if getattr(state, "node_directory", None) is None:
        state.node_directory = NodeDirectory()
    directory: NodeDirectory = state.node_directory
    return directory


@router.get("/nodes", response_model=list[NodePublic])
def list_nodes(request: Request, sv: ServicesDep, s: SessionDep, user: UserDep, zone: str | None = None,
               state: str | None = None, limit: int | None = Query(None, ge=1, le=10_000),
               offset: int = Query(0, ge=0)) -> JSONResponse:
    """Units in id order (filtered by zone / state; ``limit`` + ``offset`` page through them, the
    total is in ``X-Total-Count``). Built from the cached static rows and the live registry: no
    per-request table scan, no per-unit model validation (see controller/nodedir.py)."""
    presence = sv.presence
    picked = []
    mine = visible_zones(s, user)
    for row in _directory(request).rows(s):
        if zone and zone not in row.zones:
            continue
        if mine is not None and not mine.intersection(row.zones):
            continue
        st = presence.status(row.id)
        if state and st != state:
            continue
        picked.append((row, st))
    page = picked[offset: offset + limit if limit else None]
    out = []
    for row, st in page:
        live = presence.nodes.get(row.id)
        out.append({
            "id": row.id, "name": row.name, "zones": row.zones, "status": st,
            "alarm": (live.alarm if live else "") or row.alarm,
            "last_seen": iso(live.last_seen_ms if live and live.last_seen_ms else row.last_seen),
            "telemetry": live.telemetry if live and live.telemetry else row.telemetry,
            "lat": row.lat, "lon": row.lon,
        })
    return JSONResponse(out, headers={"X-Total-Count": str(len(picked))})


@router.post("/nodes", status_code=status.HTTP_201_CREATED, response_model=NodeCreated)
async def create_node(body: NodeCreate, sv: ServicesDep, user: AdminDep) -> NodeCreated:
    reserved = refuse_reserved(body.id, sv.settings)  # e.g. the configured controller user name
    if reserved is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, reserved)
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
        password = issue_credentials(s, body.id, by=user.username)  # its own broker account
        s.commit()
        sv.presence.load(s)
    await sv.presence.publish_configs([body.id])
    public = _public(sv, node, sorted(set(body.zones)))
    return NodeCreated(**public.model_dump(), mqtt=MqttCredentials(username=body.id, password=password))


@router.get("/nodes/{node_id}")
def get_node(node_id: str, sv: ServicesDep, s: SessionDep, user: UserDep) -> dict[str, object]:
    node = s.get(Node, node_id)
    if node is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown unit {node_id}")
    node_for(s, user, node_id)
    events = s.exec(select(NodeEvent).where(NodeEvent.node_id == node_id)
                    .order_by(col(NodeEvent.at).desc()).limit(50)).all()
    return {
        **_public(sv, node, _zones_of(s, node_id).get(node_id, [])).model_dump(),
        "events": [{"kind": e.kind, "detail": e.detail, "at": iso(e.at)} for e in events],
    }
