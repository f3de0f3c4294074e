"""Ward scoping for routes: a user sees and touches only what belongs to their org subtree (403)."""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlmodel import Session, col, select

from controller.accounts.audit import audit
from controller.accounts.models import User
from controller.accounts.roles import CAN_AIR, CAN_EMERGENCY
from controller.accounts.scope import can_see_org, visible_zones
from controller.airing.models import Broadcast
from controller.airing.rules import airing_refusal, effective_priority, is_bypass
from controller.bulletins.models import Bulletin
from controller.fleet.models import RETIRED, Node, NodeZone, Zone


def forbidden(what: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, f"{what} belongs to another ward")


def bulletin_for(s: Session, user: User, bulletin_id: int) -> Bulletin:
    b = s.get(Bulletin, bulletin_id)
    if b is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"bulletin {bulletin_id} does not exist")
    if not can_see_org(s, user, b.org_unit_id):
        raise forbidden(f"bulletin {bulletin_id}")
    return b


def broadcast_for(s: Session, user: User, broadcast_id: str) -> Broadcast:
    bc = s.get(Broadcast, broadcast_id)
    if bc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"broadcast {broadcast_id} does not exist")
    b = s.get(Bulletin, bc.bulletin_id)
    if b is not None and not can_see_org(s, user, b.org_unit_id):
        raise forbidden(f"broadcast {broadcast_id}")
    return bc


def zone_for(s: Session, user: User, zone_id: str) -> None:
    z = s.get(Zone, zone_id)
    if z is not None and not can_see_org(s, user, z.org_unit_id):
        raise forbidden(f"zone {zone_id}")


def node_visible(s: Session, user: User, node_id: str, zones: set[str] | None = None) -> bool:
    zones = visible_zones(s, user) if zones is None else zones
    if zones is None:
        return True
    mine = s.exec(select(NodeZone.zone_id).where(NodeZone.node_id == node_id)).all()
    return bool(set(mine) & zones)


def node_for(s: Session, user: User, node_id: str) -> None:
    if not node_visible(s, user, node_id):
        raise forbidden(f"unit {node_id}")


def out_of_service(s: Session, node_id: str) -> HTTPException | None:
    """404 for a unit id that names no unit in service (unknown or retired), else None: such a
    unit is nobody's, so "belongs to another ward" would be wrong (and says less than this)."""
    row = s.get(Node, node_id)
    if row is None:
        return HTTPException(status.HTTP_404_NOT_FOUND, f"unknown unit(s): {node_id}")
    if row.status == RETIRED:
        return HTTPException(status.HTTP_404_NOT_FOUND, f"unit {node_id} is retired")
    return None


def scoped_target(s: Session, user: User, all_nodes: bool, zones: list[str],
                  nodes: list[str]) -> tuple[bool, list[str], list[str]]:
    """The target a ward user may address: "all" becomes all of the user's zones. A unit that is
    retired or unknown is 404 (as for the province), one of another ward 403."""
    mine = visible_zones(s, user)
    if mine is None:
        return all_nodes, zones, nodes
    for z in zones:
        if z not in mine and s.get(Zone, z) is not None:
            raise forbidden(f"zone {z}")
    for n in nodes:
        if not node_visible(s, user, n, mine):
            raise out_of_service(s, n) or forbidden(f"unit {n}")
    if all_nodes:
        return False, sorted(set(zones) | mine), nodes
    return all_nodes, zones, nodes


def stored_target(s: Session, user: User, all_nodes: bool, zones: list[str], nodes: list[str]) -> None:
    """A target kept for later (a schedule): a ward user names the ward's zones or units, since
    "all" is resolved only when the slot fires and would then reach every unit."""
    if user.org_unit_id is not None and all_nodes:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "choose your ward's zones rather than 'all'")
    scoped_target(s, user, all_nodes, zones, nodes)


def visible_bulletin_ids(s: Session, user: User) -> set[int] | None:
    if user.org_unit_id is None:
        return None
    q = select(Bulletin.id, Bulletin.org_unit_id).where(col(Bulletin.org_unit_id).is_not(None))
    rows = s.exec(q).all()
    return {i for i, org in rows if i is not None and can_see_org(s, user, org)}


def check_airing(s: Session, user: User, bulletin_id: int, priority: str | None) -> Bulletin:
    """Who may air what; returns the bulletin row it checked, which is the row that airs.

    Operators and admins air approved bulletins of their ward. An emergency by an authorised
    user (admin, approver, operator) skips the approval queue while the bulletin is undecided
    (draft / submitted), and the caller audits it with :func:`audit_bypass` once the broadcast
    or schedule exists. A rejected bulletin never airs (controller/airing/rules.py)."""
    b = bulletin_for(s, user, bulletin_id)
    emergency = effective_priority(b, priority) == "emergency"
    if user.role not in CAN_AIR and not (emergency and user.role in CAN_EMERGENCY):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not air broadcasts")
    why = airing_refusal(b, priority)
    if why is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, why)
    return b


def audit_bypass(s: Session, user: User, b: Bulletin, priority: str | None, made: str) -> None:
    """Record an emergency that skipped the approval queue (``made``: what now airs it)."""
    if is_bypass(b, priority):
        audit(s, user.username, "emergency_bypass", f"bulletin:{b.id}",
              f"aired as an emergency while {b.approval} ({made})")
