"""The audit log."""

from __future__ import annotations

import logging

from sqlmodel import Session

from controller.accounts.models import AuditEntry

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- audit


def audit(s: Session, username: str, action: str, target: str = "", detail: str = "") -> None:
    s.add(AuditEntry(username=username, action=action, target=target[:200], detail=detail[:1000]))
    s.commit()
    logger.info("audit: %s %s %s %s", username, action, target, detail)
