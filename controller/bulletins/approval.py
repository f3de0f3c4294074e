"""The approval state a new bulletin starts in."""

from __future__ import annotations

from controller.accounts.models import User
from controller.accounts.roles import (
    CAN_APPROVE,
)
from controller.bulletins.models import Bulletin
from devices.protocol import now_ms


def initial_approval(b: Bulletin, user: User) -> None:
    """A new bulletin's approval state: an approver's or an admin's is approved by its author
    (recorded); anyone else's (an editor's, an operator's emergency) is a draft."""
    b.org_unit_id = user.org_unit_id
    if user.role not in CAN_APPROVE:
        b.approval, b.approved_sha256, b.approved_spoken_text = "draft", None, None
    else:
        b.approval, b.decided_by, b.decided_at = "approved", user.username, now_ms()
        b.approved_sha256 = b.audio_sha256  # bound to the audio it has (controller/bulletins/binding.py)
