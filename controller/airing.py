"""The one rule of what may air (issue 11 items 2 and 11), checked wherever a bulletin goes on air.

A bulletin airs when it is approved. An emergency may skip the approval queue only while the
bulletin is undecided (draft or submitted): a rejected bulletin never airs, by anyone, in any
priority. Who may ask for the bypass and in which ward is the API's business
(controller/api/scope.py ``check_airing``); this rule is re-checked on the row itself when a
broadcast is created (controller/service.py), when a schedule's slot fires (scheduler/firing.py)
and when a broadcast set for later goes on air (controller/delivery.py), so a bulletin rejected
after it was scheduled does not air.
"""

from __future__ import annotations

from controller.models import Bulletin

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
