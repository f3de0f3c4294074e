"""Pronunciation dictionaries per org unit (issue 11 item 4).

Every org unit may have entries; they apply to its own bulletins and to those of every unit
below it (a province's entries reach its wards). Along the chain top → province → ward, a lower
unit's entry for the same term wins. Entries without an org unit belong to the top of the tree
and apply everywhere. Ward A's entries therefore never reach ward B.

Who edits which dictionary: editors and approvers edit only their own org unit's; an admin
edits any org unit of their subtree (never one above it).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from controller.accounts.models import OrgUnit, User
from controller.accounts.roles import CAN_ADMIN, CAN_WRITE_BULLETINS
from controller.accounts.scope import can_see_org, subtree
from controller.bulletins.models import PronunciationEntry

MAX_DEPTH = 32  # an org tree deeper than this is a loop in the data, not a country


def chain(s: Session, org_unit_id: str | None) -> list[str | None]:
    """The org units whose entries apply to ``org_unit_id``, top first: [None, ..., org_unit_id]."""
    out: list[str | None] = []
    seen: set[str] = set()
    unit = org_unit_id
    while unit is not None and unit not in seen and len(seen) < MAX_DEPTH:
        seen.add(unit)
        out.append(unit)
        row = s.get(OrgUnit, unit)
        unit = row.parent_id if row is not None else None
    out.append(None)
    return out[::-1]


@dataclass(frozen=True)
class Effective:
    entry: PronunciationEntry
    overridden: bool  # a lower org unit has an entry for the same term


def effective_entries(s: Session, org_unit_id: str | None) -> list[Effective]:
    """Every entry that reaches ``org_unit_id`` (top first), marking those a lower unit overrides."""
    units = chain(s, org_unit_id)
    rank = {u: i for i, u in enumerate(units)}
    named = [u for u in units if u is not None]
    q = select(PronunciationEntry).where(
        col(PronunciationEntry.org_unit_id).is_(None) | col(PronunciationEntry.org_unit_id).in_(named))
    rows = sorted(s.exec(q).all(), key=lambda e: (rank[e.org_unit_id], e.term_key))
    winner: dict[str, int | None] = {}
    for e in rows:
        winner[e.term_key] = e.id  # the lowest unit comes last
    return [Effective(e, winner[e.term_key] != e.id) for e in rows]


def load_dictionary(s: Session, org_unit_id: str | None = None) -> dict[str, str]:
    """The dictionary a bulletin of ``org_unit_id`` is read with (term → spoken form)."""
    return {x.entry.term: x.entry.spoken for x in effective_entries(s, org_unit_id) if not x.overridden}


def may_view(s: Session, user: User, org_unit_id: str | None) -> bool:
    """A user may read the dictionaries of their subtree and of the units above them (which apply
    to them)."""
    return can_see_org(s, user, org_unit_id) or org_unit_id in chain(s, user.org_unit_id)


def edit_refusal(s: Session, user: User, org_unit_id: str | None) -> tuple[int, str] | None:
    """Why ``user`` may not change the dictionary of ``org_unit_id`` (HTTP status, message)."""
    if user.role not in CAN_WRITE_BULLETINS:
        return 403, f"your role ({user.role}) may not edit pronunciation dictionaries"
    if org_unit_id == user.org_unit_id:
        return None
    if user.role in CAN_ADMIN and (user.org_unit_id is None or (
            org_unit_id is not None and org_unit_id in subtree(s, user.org_unit_id))):
        return None
    if not may_view(s, user, org_unit_id):
        return 404, f"org unit {org_unit_id} has no dictionary you can see"
    return 403, (f"you may edit only the dictionary of your own org unit ({user.org_unit_id or 'the top'}); "
                 f"{org_unit_id or 'the top'}'s entries are managed there")


def reached_by(s: Session, org_unit_id: str | None) -> set[str] | None:
    """The org units whose bulletins an entry of ``org_unit_id`` reaches (None: every one)."""
    return None if org_unit_id is None else subtree(s, org_unit_id)
