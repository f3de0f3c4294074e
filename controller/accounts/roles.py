"""Roles and what each may do."""

from __future__ import annotations

from controller.accounts.models import User

ROLES = ("admin", "editor", "approver", "operator")

# what each role may do (admin may do everything)
CAN_WRITE_BULLETINS = frozenset({"admin", "editor", "approver"})
CAN_APPROVE = frozenset({"admin", "approver"})
CAN_AIR = frozenset({"admin", "operator"})
CAN_EMERGENCY = frozenset({"admin", "approver", "operator"})  # may skip the approval queue
CAN_CONTROL = frozenset({"admin", "operator"})
CAN_ADMIN = frozenset({"admin"})


# --------------------------------------------------------------------------- what an admin may touch

#: A role may grant roles up to its own rank, never above (defined here only). Approvers and
#: operators can do different things, neither more than the other; only admins administer.
ROLE_RANK = {"editor": 1, "operator": 2, "approver": 2, "admin": 3}


def may_grant_role(granter: User, role: str) -> bool:
    return role in ROLE_RANK and ROLE_RANK[role] <= ROLE_RANK.get(granter.role, 0)
