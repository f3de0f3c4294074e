"""Approval binds to the audio (issue 11 item 4): what airs is exactly what the approver heard.

At approval the bulletin records the sha256 of its audio and the spoken text the approver was
shown. Anything that changes its audio afterwards (a dictionary entry that changes its spoken
text, a new rendering) sends an approved bulletin back to the approval queue with a reason, in
the audit log. A broadcast whose audio is not the approved audio is refused when it is created
(controller/airing/broadcasts.py) and again when it goes on air (controller/airing/active.py).
"""

from __future__ import annotations

import logging

from sqlmodel import Session

from controller.accounts.audit import audit
from controller.bulletins.models import Bulletin, BulletinSpeech
from devices.protocol import now_ms

logger = logging.getLogger(__name__)


def spoken_text(s: Session, b: Bulletin) -> str | None:
    speech = s.get(BulletinSpeech, b.id) if b.id is not None else None
    return speech.spoken_text if speech else None


def bind(s: Session, b: Bulletin) -> None:
    """Record what is being approved: the current audio and spoken text (no commit)."""
    b.approved_sha256, b.approved_spoken_text = b.audio_sha256, spoken_text(s, b)
    b.pending_reason = ""


def audio_refusal(b: Bulletin, audio_sha256: str | None) -> str | None:
    """Why ``audio_sha256`` may not air as approved bulletin ``b`` (None: it may, or ``b`` is
    not approved, which controller/airing/rules.py judges)."""
    if b.approval != "approved":
        return None
    if b.approved_sha256 is None:
        return f"bulletin {b.id} has no approved audio on record; it needs approval again"
    if audio_sha256 != b.approved_sha256:
        return (f"the audio of this broadcast ({(audio_sha256 or 'none')[:12]}) is not the audio approved "
                f"for bulletin {b.id} ({b.approved_sha256[:12]}); it needs approval again")
    return None


def reopen(s: Session, b: Bulletin, *, by: str, reason: str) -> None:
    """Send an approved bulletin back to the approval queue (commits, audited)."""
    b.approval, b.submitted_at, b.pending_reason = "submitted", now_ms(), reason[:500]
    s.add(b)
    s.commit()
    audit(s, by, "bulletin_reapproval", f"bulletin:{b.id}", reason)
    logger.info("bulletin %s needs approval again: %s", b.id, reason)
