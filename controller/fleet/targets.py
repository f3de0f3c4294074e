"""Resolving a target (all units, zones, named units) to the unit ids it reaches."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from controller.core.errors import ServiceError
from controller.fleet.models import RETIRED, Node, NodeZone, Zone
from devices import protocol as p

# ---------------------------------------------------------------------- targets


@dataclass
class Resolved:
    nodes: list[str]
    scopes: list[p.AudioScope]


def resolve_targets(s: Session, *, all_nodes: bool, zones: list[str], nodes: list[str]) -> Resolved:
    """Turn a target (whole ward / zones / single nodes) into node ids and the fewest scopes."""
    if all_nodes:
        ids = sorted(s.exec(select(Node.id).where(col(Node.status) != RETIRED)).all())
        if not ids:
            raise ServiceError(422, "the ward has no loudspeaker units yet")
        return Resolved(nodes=ids, scopes=[p.AudioScope(kind="group", id="all")])
    if not zones and not nodes:
        raise ServiceError(422, "choose the whole ward, at least one zone, or at least one unit")
    known_zones = set(s.exec(select(Zone.id).where(col(Zone.id).in_(zones))).all())
    unknown = [z for z in zones if z not in known_zones]
    if unknown:
        raise ServiceError(404, f"unknown zone(s): {', '.join(unknown)}")
    in_service = select(Node.id).where(col(Node.id).in_(nodes), col(Node.status) != RETIRED)  # not retired
    known_nodes = set(s.exec(in_service).all())
    missing = [n for n in nodes if n not in known_nodes]
    if missing:
        raise ServiceError(404, f"unknown unit(s): {', '.join(missing)}")
    covered: set[str] = set()
    scopes: list[p.AudioScope] = []
    for z in dict.fromkeys(zones):
        members = s.exec(select(NodeZone.node_id).where(NodeZone.zone_id == z)).all()
        if members:
            covered.update(members)
            scopes.append(p.AudioScope(kind="group", id=z))
    for n in dict.fromkeys(nodes):
        if n not in covered:
            covered.add(n)
            scopes.append(p.AudioScope(kind="node", id=n))
    if not covered:
        raise ServiceError(422, "the chosen zones have no loudspeaker units")
    return Resolved(nodes=sorted(covered), scopes=scopes)
