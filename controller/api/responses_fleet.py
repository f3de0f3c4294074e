"""Response bodies of the fleet routes: units, zones, their commands and on/off windows (the
other bodies are in :mod:`controller.api.responses`, with ``iso`` for the times)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class NodePublic(BaseModel):
    id: str
    name: str
    zones: list[str]
    status: str
    alarm: str
    last_seen: str | None
    telemetry: dict[str, Any]
    lat: float | None = None
    lon: float | None = None
    hw: str = Field("", description="what the unit said it is at its last birth, e.g. esp32-a1s")
    fw: str = Field("", description="its firmware version, from the same birth")


class MqttCredentials(BaseModel):
    username: str = Field(description="the unit's broker user name (= its id)")
    password: str = Field(description="shown once; only its hash is stored")
    note: str = ("store this password in the unit now: it is not shown again. The broker accepts it "
                 "after `loaphuong mqtt-config` and a reload of Mosquitto (SIGHUP).")


class NodeCreated(NodePublic):
    mqtt: MqttCredentials = Field(description="the unit's own broker credentials, issued now")


class ZonePublic(BaseModel):
    id: str
    name: str
    nodes: int = Field(description="how many units are in it")
    org_unit_id: str | None


class ZoneCreated(BaseModel):
    id: str
    name: str


class NodeRetired(BaseModel):
    id: str
    status: str = Field(description="retired")
    left_zones: list[str] = Field(description="the zones it was taken out of")
    credentials_revoked: bool = Field(description="its broker account is gone from the next mqtt-config")


class NodeResultPublic(BaseModel):
    node_id: str
    status: str = Field(description="ok | error (the unit's reply) | timeout | offline")
    data: dict[str, Any]
    error: str
    ms: int | None = Field(description="reply time in milliseconds")


class CommandPublic(BaseModel):
    id: str = Field(description="correlation id")
    name: str
    args: dict[str, Any]
    target: dict[str, Any]
    created_by: str
    created_at: str | None
    finished_at: str | None
    tally: dict[str, int]
    results: list[NodeResultPublic]


class WindowPublic(BaseModel):
    id: int
    zone_id: str
    on_at: str
    off_at: str
    days: list[int]
    enabled: bool
