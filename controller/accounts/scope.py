"""Ward visibility as queries: which org units, zones and users a user may see or manage."""

from __future__ import annotations

from sqlmodel import Session, select

from controller.accounts.models import OrgUnit, User
from controller.accounts.roles import (
    ROLE_RANK,
)
from controller.fleet.models import NodeZone, Zone

# --------------------------------------------------------------------------- ward scoping


def subtree(s: Session, root: str) -> set[str]:
    """The org unit and every unit below it."""
    children: dict[str | None, list[str]] = {}
    for u in s.exec(select(OrgUnit)).all():
        children.setdefault(u.parent_id, []).append(u.id)
    out: set[str] = set()
    todo = [root]
    while todo:
        unit = todo.pop()
        if unit not in out:
            out.add(unit)
            todo.extend(children.get(unit, []))
    return out


def can_see_org(s: Session, user: User, org_unit_id: str | None) -> bool:
    """A user without an org unit sees everything; others see their subtree only.

    Objects without an org unit (created before wards were configured) belong to the top and
    are visible only to users without an org unit.
    """
    if user.org_unit_id is None:
        return True
    return org_unit_id is not None and org_unit_id in subtree(s, user.org_unit_id)


def visible_zones(s: Session, user: User) -> set[str] | None:
    """Zone ids the user may see, or None for all."""
    if user.org_unit_id is None:
        return None
    mine = subtree(s, user.org_unit_id)
    return {z.id for z in s.exec(select(Zone)).all() if z.org_unit_id in mine}


def scope_refusal(s: Session, user: User, org_unit_id: str | None) -> str | None:
    """Why ``user`` may not place something (a user, zone, org unit) at ``org_unit_id`` (None:
    the whole tree), or None when it is inside their subtree."""
    if user.org_unit_id is None:
        return None
    if org_unit_id is None:
        return "the whole tree (no org unit) is above your scope; choose an org unit of your ward"
    if org_unit_id not in subtree(s, user.org_unit_id):
        return f"org unit {org_unit_id} belongs to another ward"
    return None


def manages_user(s: Session, admin: User, target: User) -> bool:
    """An admin manages accounts of their subtree whose role does not outrank theirs."""
    return can_see_org(s, admin, target.org_unit_id) and (
        ROLE_RANK.get(target.role, 0) <= ROLE_RANK.get(admin.role, 0))


def unit_zones(s: Session, node_id: str) -> list[str]:
    return sorted(s.exec(select(NodeZone.zone_id).where(NodeZone.node_id == node_id)).all())


def manages_zones(s: Session, user: User, zone_ids: list[str]) -> bool:
    """A unit in these zones is the user's to change: every zone is in their subtree (a ward user
    needs at least one: a unit without zones belongs to the top, and so does a unit shared
    with another ward)."""
    mine = visible_zones(s, user)
    if mine is None:
        return True
    return bool(zone_ids) and set(zone_ids) <= mine
