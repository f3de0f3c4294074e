"""Relay settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.core.netguard import normalize_station


class RelaySettings(BaseModel):
    """Relay sessions (tiếp sóng) when several controllers share a database (docs/live.md)."""

    model_config = ConfigDict(extra="forbid")
    # a standby takes a dead owner's relay at most owner_ttl_s + beat_s after its last renewal (≤ 10 s)
    beat_s: float = Field(2.0, gt=0, le=300,
                          description="how often a controller renews the leases of its relays (and the "
                                      "others look for relays whose owner is gone)")
    owner_ttl_s: float = Field(6.0, gt=0, le=3600,
                               description="a relay's owner lease (database clock): another controller "
                                           "takes it over once its owner has not renewed it for this long")
    allowed_stations: list[str] = Field(
        default_factory=list, max_length=100,
        description="stations (origins scheme://host[:port]) that may be relayed although their address "
                    "is loopback, private or otherwise not public; any other relay URL must resolve to "
                    "public addresses only (controller/core/netguard.py)")

    @field_validator("allowed_stations")
    @classmethod
    def _stations(cls, v: list[str]) -> list[str]:
        return [normalize_station(x) for x in v]

    @model_validator(mode="after")
    def _beat_within_ttl(self) -> RelaySettings:
        if self.beat_s * 2 > self.owner_ttl_s:
            raise ValueError("beat_s must be at most half of owner_ttl_s")
        return self
