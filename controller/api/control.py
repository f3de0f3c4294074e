"""Remote control of units (commands with per-node results), telemetry history, broker credentials."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import ValidationError
from sqlmodel import col, select

from controller.accounts.audit import audit
from controller.accounts.models import User
from controller.accounts.roles import CAN_CONTROL
from controller.accounts.scope import manages_zones, unit_zones, visible_zones
from controller.api.deps import ServicesDep, SessionDep, UserDep
from controller.api.relays import refusal, station_guard
from controller.api.responses import iso
from controller.api.responses_fleet import CommandPublic, MqttCredentials, NodeResultPublic
from controller.api.schemas import CommandRequest
from controller.api.scope import forbidden, node_for, node_visible, out_of_service
from controller.fleet.broker_accounts import issue_credentials
from controller.fleet.commands import ARGS, CommandOutcome
from controller.fleet.models import RETIRED, Node, NodeCommand, NodeZone, Zone
from controller.fleet.registry import UNIT_ALARM

router = APIRouter(prefix="/api", tags=["control"])


def _public(row: NodeCommand) -> CommandPublic:
    tally: dict[str, int] = {}
    for r in row.results:
        tally[r["status"]] = tally.get(r["status"], 0) + 1
    return CommandPublic(id=row.id, name=row.name, args=row.args, target=row.target,
                         created_by=row.created_by, created_at=iso(row.created_at),
                         finished_at=iso(row.finished_at), tally=tally,
                         results=[NodeResultPublic(**r) for r in row.results])


def _row(o: CommandOutcome, by: str) -> NodeCommand:
    return NodeCommand(id=o.id, name=o.name, args=o.args, target=o.target, created_by=by,
                       results=[r.as_dict() for r in o.results], created_at=o.created_at,
                       finished_at=o.finished_at)


def _check_stream(sv: ServicesDep, body: CommandRequest, nodes: list[str]) -> None:
    """A bare ``play_stream`` does not go through the arbiter: refuse it while anything is on air
    in these zones, so it can never talk over an emergency (``/api/relays`` waits its turn)."""
    if body.name != "play_stream":
        return
    busy = sv.air.on_air(nodes)
    if busy or sv.air.emergency_on(nodes):
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"on air in these zones now ({', '.join(busy) or 'an emergency is waiting'}); a "
                            "relay started with play_stream would talk over it — use /api/relays, which "
                            "waits its turn (and an emergency pre-empts it)")


async def _check_stream_url(sv: ServicesDep, body: CommandRequest) -> None:
    """A unit told ``play_stream`` fetches the URL itself: it must pass the relay's address policy
    (public, or an allow-listed station: controller/core/netguard.py), like ``/api/relays``."""
    if body.name != "play_stream":
        return
    try:
        url = str(ARGS["play_stream"].model_validate(body.args).model_dump()["url"])
    except ValidationError:
        return  # refused with its reason by the command service
    if problem := await station_guard(sv).aproblem(url):
        raise HTTPException(422, refusal(problem))


@router.post("/nodes/{node_id}/commands", response_model=CommandPublic)
async def command_node(node_id: str, body: CommandRequest, sv: ServicesDep, user: UserDep) -> CommandPublic:
    """Send a command to one unit and wait for its reply (or the timeout)."""
    _check_stream(sv, body, [node_id])
    await _check_stream_url(sv, body)
    o = await sv.commands.run(body.name, body.args, nodes=[node_id], timeout_s=body.timeout_s,
                              by=user.username)
    return _public(_row(o, user.username))


@router.post("/zones/{zone_id}/commands", response_model=CommandPublic)
async def command_zone(zone_id: str, body: CommandRequest, sv: ServicesDep, user: UserDep) -> CommandPublic:
    """Send a command to every unit of a zone (``all`` = the whole ward) in one group publish;
    the result lists every unit."""
    await _check_stream_url(sv, body)
    with sv.db.session() as s:
        if zone_id != "all" and s.get(Zone, zone_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown zone {zone_id}")
        mine = visible_zones(s, user)
        if body.name == "play_stream":
            q = select(NodeZone.node_id) if zone_id == "all" else \
                select(NodeZone.node_id).where(NodeZone.zone_id == zone_id)
            _check_stream(sv, body, sorted(set(s.exec(q).all())))
        if zone_id == "all" and mine is not None:
            # "all" for a ward user is their own ward's units only, never the group of everyone
            nodes = sorted(set(s.exec(select(NodeZone.node_id).where(col(NodeZone.zone_id).in_(mine))).all()))
            if not nodes:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "your ward has no units")
            o = await sv.commands.run(body.name, body.args, nodes=nodes, timeout_s=body.timeout_s,
                                      by=user.username)
            return _public(_row(o, user.username))
    o = await sv.commands.run(body.name, body.args, zone=zone_id, timeout_s=body.timeout_s,
                              by=user.username)
    return _public(_row(o, user.username))


def _visible(s: SessionDep, user: User, row: NodeCommand) -> bool:
    """A ward user sees a command only if every unit it went to is one of theirs."""
    mine = visible_zones(s, user)
    if mine is None:
        return True
    return all(node_visible(s, user, r["node_id"], mine) for r in row.results) and (
        row.target.get("zone") in (None, *mine))


@router.get("/commands", response_model=list[CommandPublic])
def list_commands(s: SessionDep, user: UserDep, limit: int = Query(50, ge=1, le=500)) -> list[CommandPublic]:
    """Recent commands (of the user's ward), newest first."""
    rows = s.exec(select(NodeCommand).order_by(col(NodeCommand.created_at).desc()).limit(limit * 4)).all()
    return [_public(r) for r in rows if _visible(s, user, r)][:limit]


@router.get("/commands/{command_id}", response_model=CommandPublic)
def get_command(command_id: str, s: SessionDep, user: UserDep) -> CommandPublic:
    row = s.get(NodeCommand, command_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown command {command_id}")
    if not _visible(s, user, row):
        raise forbidden(f"command {command_id}")
    return _public(row)


@router.get("/nodes/{node_id}/telemetry")
def node_telemetry(node_id: str, sv: ServicesDep, s: SessionDep, _: UserDep,
                   since_ms: int | None = Query(None, ge=0, description="epoch ms"),
                   limit: int = Query(200, ge=1, le=2000)) -> dict[str, Any]:
    """The latest telemetry and the stored history (newest first)."""
    node = s.get(Node, node_id)
    if node is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown unit {node_id}")
    latest = sv.presence.telemetry_of(node_id)
    samples = sv.telemetry.history(s, node_id, since_ms=since_ms, limit=limit)
    return {
        "node_id": node_id,
        "latest": dict(latest) if latest else node.telemetry,
        "history": [{"at": iso(t.at), **t.data} for t in samples],
    }


@router.post("/nodes/{node_id}/clear-alarm")
async def clear_alarm(node_id: str, sv: ServicesDep, user: UserDep) -> dict[str, str]:
    """Clear the unit's alarm (e.g. ``duplicate_id`` once the second unit is found and removed; it
    also clears by itself after 10 min without a second unit, docs/protocol.md §1): operator or
    admin of the unit's ward, audited. Raised again if the two units are still there."""
    if user.role not in CAN_CONTROL:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not clear alarms")
    with sv.db.session() as s:
        if (missing := out_of_service(s, node_id)) is not None:
            raise missing
        node_for(s, user, node_id)
        was = sv.presence.clear_alarm(node_id, f"cleared by {user.username}")
        if not was:
            raise HTTPException(status.HTTP_409_CONFLICT, f"unit {node_id} has no alarm")
        sv.feed.later(UNIT_ALARM, node_id)  # with the clearing's write: the other controllers drop it too
        audit(s, user.username, "alarm_clear", f"node:{node_id}", was)
    await sv.writer.flush()
    return {"node_id": node_id, "cleared": was}


@router.post("/nodes/{node_id}/credentials", status_code=status.HTTP_201_CREATED)
def rotate_credentials(node_id: str, s: SessionDep, user: UserDep) -> MqttCredentials:
    """Issue a new broker password for a unit (the old one stops working after the broker reload);
    only for a unit in service whose zones are all in the admin's subtree."""
    node = s.get(Node, node_id)
    if node is None or node.status == RETIRED:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown unit {node_id}")
    if not manages_zones(s, user, unit_zones(s, node_id)):
        raise forbidden(f"unit {node_id}")
    password = issue_credentials(s, node_id, by=user.username)
    s.commit()
    return MqttCredentials(username=node_id, password=password)
