"""Zones' timed power windows (issue 14): on at a time, off at another, on chosen days, applied by
the controller (controller/fleet/windows.py)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlmodel import Session, col, select

from controller.accounts.audit import audit
from controller.accounts.models import User
from controller.api.deps import ControlDep, ServicesDep, SessionDep, UserDep
from controller.api.responses_fleet import WindowPublic
from controller.api.schemas import WindowCreate, WindowUpdate
from controller.api.scope import zone_for
from controller.fleet.models import Zone, ZoneWindow

router = APIRouter(prefix="/api", tags=["control"])


def window_public(w: ZoneWindow) -> WindowPublic:
    assert w.id is not None
    return WindowPublic(id=w.id, zone_id=w.zone_id, on_at=w.on_at, off_at=w.off_at, days=w.days,
                        enabled=w.enabled)


def _zone(s: Session, user: User, zone_id: str) -> None:
    if s.get(Zone, zone_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown zone {zone_id}")
    zone_for(s, user, zone_id)  # 403 for another ward's zone


def _window(s: Session, user: User, window_id: int) -> ZoneWindow:
    w = s.get(ZoneWindow, window_id)
    if w is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown window {window_id}")
    _zone(s, user, w.zone_id)
    return w


@router.get("/zones/{zone_id}/windows", response_model=list[WindowPublic])
def list_windows(zone_id: str, s: SessionDep, user: UserDep) -> list[WindowPublic]:
    _zone(s, user, zone_id)
    q = select(ZoneWindow).where(ZoneWindow.zone_id == zone_id).order_by(col(ZoneWindow.on_at))
    return [window_public(w) for w in s.exec(q).all()]


@router.post("/zones/{zone_id}/windows", status_code=status.HTTP_201_CREATED, response_model=WindowPublic)
def create_window(zone_id: str, body: WindowCreate, sv: ServicesDep, s: SessionDep,
                  user: ControlDep) -> WindowPublic:
    """Switch the zone's units on at ``on_at`` and off at ``off_at`` on ``days``; a switch due this
    very minute is applied at once."""
    _zone(s, user, zone_id)
    w = ZoneWindow(zone_id=zone_id, on_at=body.on_at, off_at=body.off_at, days=body.days,
                   enabled=body.enabled, created_by=user.username)
    s.add(w)
    s.commit()
    s.refresh(w)
    audit(s, user.username, "zone_window_add", f"zone:{zone_id}", f"{w.on_at}-{w.off_at} days={w.days}")
    sv.windows.kick()
    return window_public(w)


@router.patch("/zone-windows/{window_id}", response_model=WindowPublic)
def update_window(window_id: int, body: WindowUpdate, sv: ServicesDep, s: SessionDep,
                  user: ControlDep) -> WindowPublic:
    """Pause or resume a window."""
    w = _window(s, user, window_id)
    w.enabled = body.enabled
    s.add(w)
    s.commit()
    audit(s, user.username, "zone_window_update", f"window:{window_id}", f"enabled={w.enabled}")
    sv.windows.kick()
    return window_public(w)


@router.delete("/zone-windows/{window_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_window(window_id: int, s: SessionDep, user: ControlDep) -> None:
    w = _window(s, user, window_id)
    s.delete(w)
    s.commit()
    audit(s, user.username, "zone_window_delete", f"window:{window_id}", f"zone={w.zone_id}")
