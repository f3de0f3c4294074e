"""The one rule of what may air (issue 11 items 2 and 11), checked wherever a bulletin goes on air.

A bulletin airs when it is approved. An emergency may skip the approval queue only while the
bulletin is undecided (draft or submitted): a rejected bulletin never airs, by anyone, in any
priority. Who may ask for the bypass and in which ward is the API's business
(controller/api/scope.py ``check_airing``); this rule is re-checked on the row itself when a
broadcast is created (controller/airing/broadcasts.py), when a schedule's slot fires
(controller/schedules/airer.py) and when a broadcast set for later goes on air
(controller/airing/active.py ``refusal``, from controller/airing/delivery.py), so a bulletin rejected
after it was scheduled does not air.

The bypass is a person's decision, so it lasts only as long as that person may make it: when a
schedule's slot fires, or a broadcast set for later goes out, an undecided bulletin airs as an
emergency only if whoever set it up still exists, is active, still has a role that may use the
bypass there, and the bulletin is still in their ward (:func:`bypass_refusal`). Approved
bulletins do not depend on their scheduler: approval is the ward's, and so is the schedule.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import Session, select

from controller.accounts.models import User
from controller.accounts.roles import CAN_EMERGENCY
from controller.accounts.scope import can_see_org
from controller.bulletins.models import Bulletin

UNDECIDED = frozenset({"draft", "submitted"})


def effective_priority(b: Bulletin, priority: str | None) -> str:
    return priority or b.priority


def airing_refusal(b: Bulletin, priority: str | None) -> str | None:
    """Why ``b`` may not air at ``priority`` (None: the bulletin's class), or None if it may."""
    if b.approval == "approved":
        return None
    if b.approval == "rejected":
        return (f"bulletin {b.id} was rejected; a rejected bulletin never airs, not even as an "
                "emergency (edit it and submit it again)")
    if b.approval in UNDECIDED and effective_priority(b, priority) == "emergency":
        return None
    return f"bulletin {b.id} is {b.approval}; it can air only once approved"


def is_bypass(b: Bulletin, priority: str | None) -> bool:
    """An undecided bulletin aired as an emergency (what the audit log records)."""
    return b.approval != "approved" and airing_refusal(b, priority) is None


def bypass_refusal(s: Session, username: str, b: Bulletin,
                   roles: Collection[str] = CAN_EMERGENCY) -> str | None:
    """Why the emergency bypass ``username`` set up for ``b`` no longer holds (None: it holds).

    ``roles``: the roles that may set up what now fires (a schedule: those that may change
    schedules; a broadcast: those that may air an emergency)."""
    user = s.exec(select(User).where(User.username == username)).first()
    why = ("no longer exists" if user is None
           else "is disabled" if not user.active
           else f"now has the role {user.role}, which may not skip approval here" if user.role not in roles
           else "no longer belongs to the bulletin's ward" if not can_see_org(s, user, b.org_unit_id)
           else "")
    if not why:
        return None
    return (f"bulletin {b.id} is {b.approval} and was set to air as an emergency by {username}, who {why}; "
            "the emergency bypass holds only for an active user who may use it (approve the bulletin, "
            "or have an authorised user air it)")
