"""Relay presets (issue 14): the stations the relay screen offers by name, kept by admins."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlmodel import Session, col, select

from controller.accounts.audit import audit
from controller.accounts.models import User
from controller.accounts.scope import can_see_org, scope_refusal
from controller.api.deps import AdminDep, SessionDep, UserDep
from controller.api.responses import PresetPublic
from controller.api.schemas import PresetCreate, PresetUpdate
from controller.relays.models import RelayPreset

router = APIRouter(prefix="/api/relay-presets", tags=["relays"])


def _public(p: RelayPreset) -> PresetPublic:
    assert p.id is not None
    return PresetPublic(id=p.id, name=p.name, url=p.url, mode=p.mode, org_unit_id=p.org_unit_id)


def visible_presets(s: Session, user: User) -> list[RelayPreset]:
    """The province's presets and those of the user's ward (or of any ward above or below it)."""
    rows = s.exec(select(RelayPreset).order_by(col(RelayPreset.name))).all()
    return [p for p in rows if p.org_unit_id is None or user.org_unit_id is None
            or can_see_org(s, user, p.org_unit_id)]


def _own(s: Session, admin: User, preset_id: int) -> RelayPreset:
    p = s.get(RelayPreset, preset_id)
    if p is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown relay preset {preset_id}")
    why = scope_refusal(s, admin, p.org_unit_id)
    if why:
        raise HTTPException(status.HTTP_403_FORBIDDEN, why)
    return p


@router.get("", response_model=list[PresetPublic])
def list_presets(s: SessionDep, user: UserDep) -> list[PresetPublic]:
    return [_public(p) for p in visible_presets(s, user)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PresetPublic)
def create_preset(body: PresetCreate, s: SessionDep, admin: AdminDep) -> PresetPublic:
    """A preset of the admin's ward (a province admin's: every ward's)."""
    p = RelayPreset(name=body.name.strip(), url=body.url, mode=body.mode, org_unit_id=admin.org_unit_id,
                    created_by=admin.username)
    s.add(p)
    s.commit()
    s.refresh(p)
    audit(s, admin.username, "relay_preset_add", f"preset:{p.id}", f"{p.name} {p.url}")
    return _public(p)


@router.patch("/{preset_id}", response_model=PresetPublic)
def update_preset(preset_id: int, body: PresetUpdate, s: SessionDep, admin: AdminDep) -> PresetPublic:
    p = _own(s, admin, preset_id)
    for key, value in body.model_dump(exclude_none=True).items():
        setattr(p, key, value.strip() if key == "name" else value)
    s.add(p)
    s.commit()
    audit(s, admin.username, "relay_preset_update", f"preset:{preset_id}",
          body.model_dump_json(exclude_none=True))
    return _public(p)


@router.delete("/{preset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_preset(preset_id: int, s: SessionDep, admin: AdminDep) -> None:
    p = _own(s, admin, preset_id)
    s.delete(p)
    s.commit()
    audit(s, admin.username, "relay_preset_delete", f"preset:{preset_id}", p.name)
