"""The unit registry as the database has it: what presence keeps of each unit (its zones, name,
alarm, desired volume), read for every unit at start or for the few that another controller
changed (controller/fleet/sync.py)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlmodel import Session, col, select

from controller.fleet.models import RETIRED, Node, NodeSetting, NodeZone

#: Kinds of the change feed (controller/core/feed.py) for units; the key is the unit id.
UNIT = "unit"  # provisioned, changed (name, zones, position) or retired
UNIT_SETTING = "unit_setting"  # a desired setting (volume) changed
UNIT_ALARM = "unit_alarm"  # an operator cleared the unit's alarm


@dataclass(frozen=True)
class UnitRecord:
    id: str
    name: str
    zones: tuple[str, ...]
    alarm: str
    retired: bool
    volume: int | None  # the desired volume set by a command; None: never set


def read_units(s: Session, ids: Collection[str] | None = None) -> list[UnitRecord]:
    """Every unit (retired ones too: presence forgets them), or those of ``ids`` that exist."""
    nodes = select(Node)
    zones = select(NodeZone)
    settings = select(NodeSetting)
    if ids is not None:
        wanted = sorted(ids)
        nodes = nodes.where(col(Node.id).in_(wanted))
        zones = zones.where(col(NodeZone.node_id).in_(wanted))
        settings = settings.where(col(NodeSetting.node_id).in_(wanted))
    groups: dict[str, list[str]] = {}
    for nz in s.exec(zones).all():
        groups.setdefault(nz.node_id, []).append(nz.zone_id)
    volumes = {row.node_id: row.volume for row in s.exec(settings).all()}
    return [UnitRecord(n.id, n.name, tuple(sorted(groups.get(n.id, []))), n.alarm, n.status == RETIRED,
                       volumes.get(n.id)) for n in s.exec(nodes.order_by(col(Node.id))).all()]


def cleared_alarms(s: Session, ids: Collection[str] | None) -> list[str]:
    """Of ``ids`` (None: every unit), those whose alarm the database no longer has."""
    q = select(Node.id).where(Node.alarm == "")
    if ids is not None:
        q = q.where(col(Node.id).in_(sorted(ids)))
    return list(s.exec(q).all())
