"""Schedule kinds → APScheduler 3 triggers, always in Asia/Ho_Chi_Minh (UTC+7, no DST).

A ``Spec`` is what the ward officer asked for (validated, with messages they can act on);
``build_trigger`` turns it into a CronTrigger / OrTrigger of CronTriggers / DateTrigger.
``LeadTrigger`` fires the same slots ``lead`` earlier, so the audio reaches the units before
air time; it is importable by module path, as APScheduler's pickled job store needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scheduler.clock import TIMEZONE

Kind = Literal["once", "daily", "weekly", "between", "cron"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CRON_DOW = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # standard crontab: 0 (and 7) = Sunday
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
#: how ward staff write a time: "6h30", "6h", "17g15", "06.30", "6 giờ 30", "6 giờ 30 phút", "6 giờ"
_VI_TIME_RE = re.compile(r"^(\d{1,2})\s*(?:h|g|giờ|\.)\s*(?:(\d{1,2})\s*(?:phút|p|')?)?$", re.I)


def parse_time_of_day(text: str) -> time:
    """'05:30', '17:00:15' or as staff write it ('6h30', '17g', '6 giờ 30 phút') → time; anything
    else (e.g. '25:61') → ValueError with the reason."""
    if (m := _TIME_RE.match(text.strip())) is not None:
        h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    elif (v := _VI_TIME_RE.match(text.strip())) is not None:
        if v.group(2) is not None and len(v.group(2)) == 1 and not text.strip().endswith(("phút", "p", "'")):
            raise ValueError(f"'{text}' is not a time of day; write the minutes with two digits, e.g. 6h05")
        h, mi, s = int(v.group(1)), int(v.group(2) or 0), 0
    else:
        raise ValueError(f"'{text}' is not a time of day; write HH:MM or HH:MM:SS, e.g. 05:30 (or 5h30)")
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(f"'{text}' is not a time of day (hours 00-23, minutes and seconds 00-59)")
    return time(h, mi, s)


def _dow_value(token: str, expr: str) -> int:
    token = token.lower()
    if token in _CRON_DOW:
        return _CRON_DOW.index(token)
    if token.isdigit() and int(token) <= 7:
        return int(token) % 7
    raise ValueError(f"day of week '{token}' in '{expr}' is not 0-7 or sun-sat")


def standard_dow(field: str) -> str:
    """A crontab day-of-week field (0/7 = Sunday) → APScheduler 3 names.

    APScheduler 3's ``from_crontab`` counts 0 as Monday (its issue 286); ward staff who copy a
    crontab line expect Sunday. Names are unambiguous, so every field is rewritten to names.
    """
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        rng, _, step_s = part.partition("/")
        step = 1
        if step_s:
            if not step_s.isdigit() or int(step_s) == 0:
                raise ValueError(f"step '{step_s}' in day of week '{field}' must be a positive number")
            step = int(step_s)
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            a, b = rng.split("-", 1)
            lo, hi = _dow_value(a, field), _dow_value(b, field)
            if b == "7":
                hi = 7
            if hi < lo:
                raise ValueError(f"day-of-week range '{rng}' runs backwards")
        else:
            lo = hi = _dow_value(rng, field)
            if step_s:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_CRON_DOW[d] for d in sorted(days))


def cron_trigger(expr: str, start: datetime | None = None, end: datetime | None = None) -> CronTrigger:
    """A standard 5-field crontab line (minute hour day month weekday) in ward time."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday); "
                         f"'{expr}' has {len(fields)}")
    try:
        return CronTrigger(minute=fields[0], hour=fields[1], day=fields[2], month=fields[3],
                           day_of_week=standard_dow(fields[4]), start_date=start, end_date=end,
                           timezone=TIMEZONE)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression '{expr}': {exc}") from None


class Spec(BaseModel):
    """When a schedule airs. Times of day and dates are ward time (Asia/Ho_Chi_Minh, +07:00)."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind = Field(description="once | daily | weekly | between (two dates) | cron")
    at: datetime | None = Field(None, description="once: the instant; without an offset it is ward time")
    times: list[str] = Field(default_factory=list, max_length=48,
                             description="daily / weekly / between: times of day, 'HH:MM[:SS]'")
    weekdays: list[Weekday] = Field(default_factory=list, description="weekly: mon ... sun")
    start_date: date | None = Field(None, description="first day (inclusive); required for 'between'")
    end_date: date | None = Field(None, description="last day (inclusive); required for 'between'")
    cron: str | None = Field(None, max_length=200,
                             description="cron: 'minute hour day month weekday' (0 or 7 = Sunday)")

    @field_validator("at")
    @classmethod
    def _at(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        v = v.replace(tzinfo=TIMEZONE) if v.tzinfo is None else v.astimezone(TIMEZONE)
        return v.replace(microsecond=0) if v.microsecond else v

    @field_validator("times")
    @classmethod
    def _times(cls, v: list[str]) -> list[str]:
        parsed = sorted({parse_time_of_day(t) for t in v})
        return [t.strftime("%H:%M:%S") if t.second else t.strftime("%H:%M") for t in parsed]

    @model_validator(mode="after")
    def _shape(self) -> Spec:
        need = {"once": {"at"}, "daily": {"times"}, "weekly": {"times", "weekdays"},
                "between": {"times", "start_date", "end_date"}, "cron": {"cron"}}[self.kind]
        allowed = need | ({"start_date", "end_date"} if self.kind != "once" else set())
        given = {k for k in ("at", "times", "weekdays", "start_date", "end_date", "cron")
                 if getattr(self, k) not in (None, [])}
        missing = sorted(need - given)
        if missing:
            raise ValueError(f"a '{self.kind}' schedule needs {', '.join(missing)}")
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(f"a '{self.kind}' schedule does not take {', '.join(extra)}")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        if self.cron is not None:
            cron_trigger(self.cron)  # the parser's own reason if it is invalid
        return self


def _bounds(spec: Spec) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(spec.start_date, time(0), TIMEZONE) if spec.start_date else None
    end = (datetime.combine(spec.end_date, time(23, 59, 59, 999999), TIMEZONE)
           if spec.end_date else None)  # the last day counts whole
    return start, end


def build_trigger(spec: Spec) -> BaseTrigger:
    """The trigger of the slots themselves (no lead)."""
    if spec.kind == "once":
        assert spec.at is not None
        return DateTrigger(run_date=spec.at, timezone=TIMEZONE)
    start, end = _bounds(spec)
    if spec.kind == "cron":
        assert spec.cron is not None
        return cron_trigger(spec.cron, start, end)
    dow = ",".join(spec.weekdays) if spec.kind == "weekly" else None
    crons: list[BaseTrigger] = []
    for t in spec.times:
        tt = parse_time_of_day(t)
        crons.append(CronTrigger(hour=tt.hour, minute=tt.minute, second=tt.second, day_of_week=dow,
                                 start_date=start, end_date=end, timezone=TIMEZONE))
    return crons[0] if len(crons) == 1 else OrTrigger(crons)


class LeadTrigger(BaseTrigger):
    """``inner``'s fire times moved ``lead`` earlier: the job fires at slot − lead."""

    def __init__(self, inner: BaseTrigger, lead: timedelta) -> None:
        self.inner = inner
        self.lead = lead

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        prev = previous_fire_time + self.lead if previous_fire_time is not None else None
        nxt: datetime | None = self.inner.get_next_fire_time(prev, now + self.lead)
        return None if nxt is None else nxt - self.lead

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "inner": self.inner, "lead": self.lead}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.inner, self.lead = state["inner"], state["lead"]

    def __str__(self) -> str:
        return f"{self.inner} (fired {self.lead.total_seconds():.0f} s early)"

    def __repr__(self) -> str:
        return f"<LeadTrigger inner={self.inner!r} lead={self.lead!r}>"


def first_slot_at_or_after(trigger: BaseTrigger, when: datetime) -> datetime | None:
    """The first slot at or after ``when`` (a DateTrigger's single slot only if not before)."""
    nxt: datetime | None = trigger.get_next_fire_time(None, when)
    while nxt is not None and nxt < when:  # a DateTrigger answers its date whatever `now` is
        nxt = trigger.get_next_fire_time(nxt, when)
    return nxt


def slots(trigger: BaseTrigger, start: datetime, end: datetime, limit: int = 10_000) -> Iterator[datetime]:
    """Slots in [start, end), at most ``limit``."""
    t = first_slot_at_or_after(trigger, start)
    n = 0
    while t is not None and t < end and n < limit:
        yield t
        n += 1
        t = trigger.get_next_fire_time(t, t)
