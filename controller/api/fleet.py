"""Zones and loudspeaker units."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import Response
from sqlmodel import Session, col, delete, select

from controller.accounts.audit import audit
from controller.accounts.models import OrgUnit, User
from controller.accounts.scope import manages_zones, scope_refusal, unit_zones, visible_zones
from controller.api.deps import AdminDep, ServicesDep, SessionDep, UserDep
from controller.api.responses import iso
from controller.api.responses_fleet import (
    MqttCredentials,
    NodeCreated,
    NodePublic,
    NodeRetired,
    ZoneCreated,
    ZonePublic,
)
from controller.api.schemas import NodeCreate, NodeUpdate, ZoneCreate
from controller.api.scope import forbidden, node_for
from controller.fleet.broker_accounts import issue_credentials, refuse_reserved
from controller.fleet.models import RETIRED, Node, NodeCredential, NodeEvent, NodeZone, Zone
from controller.fleet.registry import UNIT

router = APIRouter(prefix="/api", tags=["fleet"])


@router.get("/zones", response_model=list[ZonePublic])
def list_zones(s: SessionDep, user: UserDep) -> list[dict[str, object]]:
    counts: dict[str, int] = {}
    for nz in s.exec(select(NodeZone)).all():
        counts[nz.zone_id] = counts.get(nz.zone_id, 0) + 1
    mine = visible_zones(s, user)
    return [{"id": z.id, "name": z.name, "nodes": counts.get(z.id, 0), "org_unit_id": z.org_unit_id}
            for z in s.exec(select(Zone).order_by(Zone.id)).all() if mine is None or z.id in mine]


@router.post("/zones", status_code=status.HTTP_201_CREATED, response_model=ZoneCreated)
def create_zone(body: ZoneCreate, s: SessionDep, admin: AdminDep) -> dict[str, str]:
    """A new zone of an org unit in the admin's subtree (a ward admin's zones are their ward's)."""
    if body.org_unit_id is not None and s.get(OrgUnit, body.org_unit_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown org unit {body.org_unit_id}")
    why = scope_refusal(s, admin, body.org_unit_id)
    if why:
        raise HTTPException(status.HTTP_403_FORBIDDEN, why)
    if s.get(Zone, body.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"zone {body.id} already exists")
    s.add(Zone(id=body.id, name=body.name, org_unit_id=body.org_unit_id))
    s.commit()
    audit(s, admin.username, "zone_add", body.id, f"org={body.org_unit_id}")
    return {"id": body.id, "name": body.name}


def _public(sv: ServicesDep, node: Node, zones: list[str]) -> NodePublic:
    live = sv.presence.view(node.id)
    return NodePublic(
        id=node.id, name=node.name, zones=zones, status=sv.presence.status(node.id),
        alarm=(live.alarm if live else "") or node.alarm,
        last_seen=iso(live.last_seen_ms if live and live.last_seen_ms else node.last_seen),
        telemetry=(dict(live.telemetry) if live and live.telemetry else node.telemetry),
        lat=node.lat, lon=node.lon,
        hw=(live.board[0] if live and any(live.board) else node.hw),
        fw=(live.board[1] if live and any(live.board) else node.fw),
    )


def _zones_of(s: Session, node_id: str | None = None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    q = select(NodeZone) if node_id is None else select(NodeZone).where(NodeZone.node_id == node_id)
    for nz in s.exec(q.order_by(col(NodeZone.zone_id))).all():
        out.setdefault(nz.node_id, []).append(nz.zone_id)
    return out


#: The most units one ``GET /api/nodes`` returns (also without ``limit``): a bigger ``limit`` is
#: served this many, the rest on the next pages (``Link: <...>; rel="next"``).
MAX_PAGE = 1000


@router.get("/nodes", response_model=list[NodePublic])
def list_nodes(request: Request, sv: ServicesDep, s: SessionDep, user: UserDep, zone: str | None = None,
               state: str | None = None, limit: int | None = Query(None, ge=1),
               offset: int = Query(0, ge=0)) -> Response:
    """Units in id order, filtered by zone / state, one page: ``limit`` units (at most and by
    default 1,000 — a larger ``limit`` gets 1,000) from ``offset``. The total is in
    ``X-Total-Count``; when more follow, ``Link: </api/nodes?...&offset=N>; rel="next"``.
    Built from the cached static rows, the live registry and each unit's cached JSON: no
    per-request table scan or model validation, only changed units re-serialised
    (controller/fleet/directory.py)."""
    presence = sv.presence
    mine = visible_zones(s, user)
    picked = sv.node_directory.rows(s)
    if zone or mine is not None or state:  # else every unit: no pass over them all
        picked = [row for row in picked if (not zone or zone in row.zones)
                  and (mine is None or not mine.isdisjoint(row.zones))
                  and (not state or presence.status(row.id) == state)]
    size = min(limit or MAX_PAGE, MAX_PAGE)
    directory = sv.node_directory
    out = []
    for row in picked[offset: offset + size]:
        live = presence.view(row.id)
        out.append(directory.row_json(
            row, live.status if live else "unknown", (live.alarm if live else "") or row.alarm,
            live.last_seen_ms if live and live.last_seen_ms else row.last_seen,
            live.telemetry if live and live.telemetry else row.telemetry, iso,
            live.board if live else ("", "")))
    headers = {"X-Total-Count": str(len(picked))}
    if offset + size < len(picked):
        nxt = request.url.include_query_params(offset=offset + size)
        headers["Link"] = f'<{nxt.path}?{nxt.query}>; rel="next"'
    return Response(b"[" + b",".join(out) + b"]", media_type="application/json", headers=headers)


def _check_zones(s: Session, user: User, zones: list[str]) -> None:
    """Zones a unit may be put in: known ones (404), all of the user's subtree (403)."""
    missing = [z for z in zones if s.get(Zone, z) is None]
    if missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown zone(s): {', '.join(missing)}")
    if not manages_zones(s, user, zones):
        mine = visible_zones(s, user) or set()
        foreign = [z for z in zones if z not in mine]
        if foreign:
            raise forbidden(f"zone {foreign[0]}")
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a unit of your ward needs at least one of its zones")


def _former_zones(s: Session, node_id: str) -> list[str]:
    """The zones a retired unit was in (kept in its ``retired`` event: who may read its history)."""
    ev = s.exec(select(NodeEvent).where(NodeEvent.node_id == node_id, NodeEvent.kind == RETIRED)
                .order_by(col(NodeEvent.id).desc())).first()
    try:
        zones = json.loads(ev.detail).get("zones", []) if ev else []
    except (ValueError, AttributeError):
        return []
    return [str(z) for z in zones] if isinstance(zones, list) else []


def _live_node(s: Session, user: User, node_id: str) -> Node:
    """A unit (not retired) the user may change: all its zones are in their subtree."""
    node = s.get(Node, node_id)
    if node is None or node.status == RETIRED:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown unit {node_id}")
    if not manages_zones(s, user, unit_zones(s, node_id)):
        raise forbidden(f"unit {node_id}")
    return node


@router.post("/nodes", status_code=status.HTTP_201_CREATED, response_model=NodeCreated)
async def create_node(body: NodeCreate, sv: ServicesDep, user: AdminDep) -> NodeCreated:
    """A new unit in zones of the admin's subtree, with its own broker account. The id of a
    retired unit may be used again: it gets fresh credentials (its history stays)."""
    reserved = refuse_reserved(body.id, sv.settings.mqtt)  # e.g. the configured controller user name
    if reserved is not None:
        raise HTTPException(422, reserved)
    with sv.db.session() as s:
        node = s.get(Node, body.id)
        if node is not None and node.status != RETIRED:
            raise HTTPException(status.HTTP_409_CONFLICT, f"unit {body.id} already exists")
        _check_zones(s, user, body.zones)
        if node is not None and not manages_zones(s, user, _former_zones(s, body.id)):
            raise forbidden(f"unit {body.id}")
        if node is None:
            node = Node(id=body.id, name=body.name, lat=body.lat, lon=body.lon)
        else:  # a retired id back in service: a new unit as far as anyone can tell
            node.name, node.lat, node.lon, node.status = body.name, body.lat, body.lon, "unknown"
            node.session, node.alarm, node.telemetry = "", "", {}
        s.add(node)
        for z in dict.fromkeys(body.zones):
            s.add(NodeZone(node_id=body.id, zone_id=z))
        password = issue_credentials(s, body.id, by=user.username)  # its own broker account
        sv.feed.emit(s, UNIT, body.id)  # the other controllers learn it at commit
        s.commit()
        sv.presence.load(s)
        audit(s, user.username, "node_add", body.id, f"zones={','.join(body.zones)}")
    await sv.presence.publish_configs([body.id])
    public = _public(sv, node, sorted(set(body.zones)))
    return NodeCreated(**public.model_dump(), mqtt=MqttCredentials(username=body.id, password=password))


@router.patch("/nodes/{node_id}", response_model=NodePublic)
async def update_node(node_id: str, body: NodeUpdate, sv: ServicesDep, user: AdminDep) -> NodePublic:
    """Rename, move or re-zone a unit of one's subtree, into zones of one's subtree only (403;
    nothing changes). The broker's ACL follows at the next ``loaphuong mqtt-config``."""
    with sv.db.session() as s:
        node = _live_node(s, user, node_id)
        if body.zones is not None:
            _check_zones(s, user, body.zones)
            s.exec(delete(NodeZone).where(col(NodeZone.node_id) == node_id))  # type: ignore[call-overload]
            for z in dict.fromkeys(body.zones):
                s.add(NodeZone(node_id=node_id, zone_id=z))
        for key in ("name", "lat", "lon"):
            if getattr(body, key) is not None:
                setattr(node, key, getattr(body, key))
        s.add(node)
        sv.feed.emit(s, UNIT, node_id)
        s.commit()
        sv.node_directory.changed()
        sv.presence.load(s)
        audit(s, user.username, "node_update", node_id, body.model_dump_json(exclude_none=True))
        zones = unit_zones(s, node_id)
    await sv.presence.publish_configs([node_id])
    return _public(sv, node, zones)


@router.delete("/nodes/{node_id}", response_model=NodeRetired)
async def retire_node(node_id: str, sv: ServicesDep, user: AdminDep) -> NodeRetired:
    """Retire a unit of one's subtree: its broker account is revoked (the next ``loaphuong
    mqtt-config`` leaves it out of passwd and acl), it leaves its zones and the unit lists, no
    broadcast or command can address it (its unfinished deliveries are cancelled); its
    deliveries and events stay readable."""
    with sv.db.session() as s:
        node = _live_node(s, user, node_id)
        zones = unit_zones(s, node_id)
        cred = s.get(NodeCredential, node_id)
        if cred is not None:
            s.delete(cred)
        s.exec(delete(NodeZone).where(col(NodeZone.node_id) == node_id))  # type: ignore[call-overload]
        node.status = RETIRED
        s.add(node)
        record = json.dumps({"zones": zones, "by": user.username})
        s.add(NodeEvent(node_id=node_id, kind=RETIRED, detail=record[:500]))
        sv.feed.emit(s, UNIT, node_id)
        s.commit()
        sv.presence.forget(node_id)
        sv.delivery.forget_node(node_id)
        audit(s, user.username, "node_retire", node_id,
              f"zones={','.join(zones)}; broker credentials revoked")
    return NodeRetired(id=node_id, status=RETIRED, left_zones=zones, credentials_revoked=cred is not None)


@router.get("/nodes/{node_id}")
def get_node(node_id: str, sv: ServicesDep, s: SessionDep, user: UserDep) -> dict[str, object]:
    """A unit and its latest events; a retired unit stays readable to those who saw its zones."""
    node = s.get(Node, node_id)
    if node is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown unit {node_id}")
    if node.status == RETIRED:
        mine = visible_zones(s, user)
        if mine is not None and not mine.intersection(_former_zones(s, node_id)):
            raise forbidden(f"unit {node_id}")
    else:
        node_for(s, user, node_id)
    events = s.exec(select(NodeEvent).where(NodeEvent.node_id == node_id)
                    .order_by(col(NodeEvent.at).desc()).limit(50)).all()
    public = _public(sv, node, _zones_of(s, node_id).get(node_id, []))
    if node.status == RETIRED:
        public.status = RETIRED
    return {
        **public.model_dump(),
        "events": [{"kind": e.kind, "detail": e.detail, "at": iso(e.at)} for e in events],
    }
