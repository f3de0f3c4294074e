"""Delivery settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devices.protocol import DEFAULT_CHUNK_SIZE
from scheduler.arbiter import PreemptPolicy


class DeliverySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunk_size: int = Field(DEFAULT_CHUNK_SIZE, gt=0, le=65536, description="audio bytes per chunk message")
    default_valid_s: int = Field(3600, gt=0, description="how long a broadcast stays deliverable")
    resend_after_s: float = Field(15.0, gt=0, description="re-offer the manifest to a silent online node")
    max_resends: int = Field(5, ge=0, description="re-offers per node before waiting for expiry")
    sweep_s: float = Field(2.0, gt=0, description="how often delivery timeouts are checked")
    flush_s: float = Field(0.2, gt=0, description="how often batched acks are written to the database")
    heartbeat_timeout_s: float = Field(45.0, gt=0, le=60, description="silent node becomes offline after")
    preempt_policy: PreemptPolicy = Field(
        PreemptPolicy.DROP,
        description="what an emergency does to the item it interrupts: drop | restart | resume")
    start_margin_ms: int = Field(
        1500, ge=100, le=30_000,
        description="play commands name an instant at most this far ahead (the cap of the margin "
                    "derived from the measured play round trips: controller/airing/margin.py)")
    start_margin_floor_ms: int = Field(
        250, ge=0, le=30_000, description="the start margin is never shorter than this")
    emergency_ready_wait_s: float = Field(
        1.0, ge=0, le=300,
        description="an emergency waits at most this long for its online units to verify the "
                    "audio (the rest join in step, further into it); the attention tone sounds at once")
    reconcile_after_ms: int = Field(
        3000, ge=500, le=60_000,
        description="a unit short of playing this long after its start instant (or still playing "
                    "this long after a stop) is asked again")
    reconcile_max_wait_s: float = Field(
        30.0, ge=1, le=600,
        description="the wait between two asks of one unit doubles from 2 s up to this")
    ready_wait_s: float = Field(
        10.0, ge=0, le=300,
        description="air-now waits at most this long for online units to verify the audio")
    # a standby takes a dead owner's broadcasts at most ttl + renew after its last renewal (≤ 10 s)
    owner_ttl_s: float = Field(
        6.0, gt=0, le=600,
        description="a broadcast's owner lease (database clock): another controller takes it over "
                    "once its owner has not renewed it for this long")
    owner_renew_s: float = Field(
        2.0, gt=0, le=200,
        description="how often the owner renews its broadcasts and the others look for orphaned ones")
    broker_lost_s: float | None = Field(
        None, ge=0, le=600,
        description="a controller whose broker has not passed its own probe back for this long gives "
                    "its broadcasts up for another controller to take over (0: never); default: 4 s on "
                    "PostgreSQL (several controllers), never on SQLite (one controller)")
    cluster_zones: bool | None = Field(
        None, description="take zones on air in the database (several controllers); default: on "
                          "PostgreSQL, off on SQLite (one controller)")

    @model_validator(mode="after")
    def _renew_within_ttl(self) -> DeliverySettings:
        if self.owner_renew_s * 2 > self.owner_ttl_s:
            raise ValueError("owner_renew_s must be at most half of owner_ttl_s")
        return self
