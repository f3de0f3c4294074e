"""Settings of the schedule runner (``LOAPHUONG_SCHEDULE__LEAD_S=600`` etc.)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ScheduleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(True, description="take part in firing schedules (one controller fires at a time)")
    lead_s: float = Field(600, ge=0, le=6 * 3600,
                          description="publish the audio this long before the slot so units have it in time")
    grace_s: float = Field(900, ge=0, le=24 * 3600,
                           description="a slot found late by at most this much still airs (marked late); "
                                       "later than that it is recorded as missed")
    # a standby takes over at most ttl + renew after the holder died (issue 16: ≤ 10 s); renewing
    # every 2 s leaves a holder two more tries before its lease (6 s − 0.6 s margin) lapses
    lease_ttl_s: float = Field(6, gt=0, le=600,
                               description="the firing controller's lease; a standby takes over after it")
    renew_s: float = Field(2, gt=0, le=200, description="how often the lease is renewed (or sought)")
    reconcile_s: float = Field(10, gt=0, le=3600,
                               description="how often the firing controller picks up changes made elsewhere")
    db_timeout_s: float = Field(3, gt=0, le=60,
                                description="give up a scheduler database call after this long and retry")
    prepare_s: float = Field(5, ge=0, le=60,
                             description="take the slots due within this many seconds from the job store "
                                         "ahead and build what they air, so that at their instant only the "
                                         "claim is written (0: off, APScheduler hands each out when due)")
    workers: int = Field(4, ge=1, le=32, description="threads that air slots (database work)")

    @model_validator(mode="after")
    def _renew_within_ttl(self) -> ScheduleSettings:
        if self.renew_s * 2 > self.lease_ttl_s:
            raise ValueError("renew_s must be at most half of lease_ttl_s, "
                             "or the lease lapses between renewals")
        return self
