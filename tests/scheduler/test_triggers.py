"""Trigger math: schedule kinds → slots in Asia/Ho_Chi_Minh (+07:00, no DST), the lead shift,
standard crontab weekdays, and the messages for bad input."""

from __future__ import annotations

import itertools
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from scheduler.clock import TIMEZONE
from scheduler.triggers import LeadTrigger, Spec, build_trigger, slots, standard_dow

MON = datetime(2026, 11, 23, 12, 0, tzinfo=TIMEZONE)  # a Monday, noon in the ward


def iso(spec: dict[str, Any], days: int = 7, start: datetime = MON) -> list[str]:
    return [t.isoformat() for t in slots(build_trigger(Spec.model_validate(spec)), start,
                                         start + timedelta(days=days))]


def test_daily_times_are_sorted_ward_time_and_exact_utc_instants() -> None:
    spec = Spec(kind="daily", times=["17:00", "05:30", "05:30"])
    assert spec.times == ["05:30", "17:00"]
    got = list(slots(build_trigger(spec), MON, MON + timedelta(days=2)))
    assert [t.isoformat() for t in got] == [
        "2026-11-23T17:00:00+07:00", "2026-11-24T05:30:00+07:00",
        "2026-11-24T17:00:00+07:00", "2026-11-25T05:30:00+07:00"]
    # 05:30 in the ward is 22:30 UTC the day before
    assert got[1].astimezone(UTC) == datetime(2026, 11, 23, 22, 30, tzinfo=UTC)


def test_times_as_ward_staff_write_them_are_the_same_times() -> None:
    # what the schedule form already accepts, the API accepts too (a script, another client)
    spec = Spec(kind="daily", times=["6h30", "17g", "6 giờ 30 phút", "06.30", "11 giờ 05", "20H15"])
    assert spec.times == ["06:30", "11:05", "17:00", "20:15"]


def test_no_daylight_saving_a_whole_year_of_daily_slots_is_exactly_24_h_apart() -> None:
    trig = build_trigger(Spec(kind="daily", times=["05:30"]))
    year = list(slots(trig, datetime(2026, 1, 1, tzinfo=TIMEZONE), datetime(2027, 1, 1, tzinfo=TIMEZONE)))
    assert len(year) == 365
    assert {t.utcoffset() for t in year} == {timedelta(hours=7)}
    assert {b - a for a, b in itertools.pairwise(year)} == {timedelta(days=1)}


def test_weekly_between_dates_and_seconds() -> None:
    assert iso({"kind": "weekly", "weekdays": ["sat", "mon"], "times": ["06:00"]}, days=8) == [
        "2026-11-28T06:00:00+07:00", "2026-11-30T06:00:00+07:00"]
    # both dates count whole; before and after them nothing airs
    assert iso({"kind": "between", "times": ["06:00:30"], "start_date": "2026-11-25",
                "end_date": "2026-11-26"}, days=10) == [
        "2026-11-25T06:00:30+07:00", "2026-11-26T06:00:30+07:00"]
    assert iso({"kind": "daily", "times": ["23:59:59"], "end_date": "2026-11-24"}, days=5) == [
        "2026-11-23T23:59:59+07:00", "2026-11-24T23:59:59+07:00"]


def test_cron_weekday_numbers_follow_crontab_not_apscheduler3() -> None:
    # crontab: 0 and 7 are Sunday, 1-5 Monday to Friday (APScheduler 3's from_crontab reads 0 as Monday)
    assert iso({"kind": "cron", "cron": "30 5 * * 0"}) == ["2026-11-29T05:30:00+07:00"]
    assert iso({"kind": "cron", "cron": "30 5 * * 7"}) == ["2026-11-29T05:30:00+07:00"]
    slots_ = iso({"kind": "cron", "cron": "0 17 * * 1-5"})
    weekdays = [datetime.fromisoformat(t).strftime("%a") for t in slots_]
    assert weekdays == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert standard_dow("*/2") == "sun,tue,thu,sat" and standard_dow("5-7") == "sun,fri,sat"
    assert standard_dow("MON,wed") == "mon,wed"
    assert iso({"kind": "cron", "cron": "*/20 6 1 12 *"}, days=10) == [
        "2026-12-01T06:00:00+07:00", "2026-12-01T06:20:00+07:00", "2026-12-01T06:40:00+07:00"]


def test_once_without_offset_is_ward_time() -> None:
    at = Spec(kind="once", at=datetime(2026, 11, 24, 5, 30)).at
    assert at is not None and at.isoformat() == "2026-11-24T05:30:00+07:00"
    utc = Spec.model_validate({"kind": "once", "at": "2026-11-23T22:30:00Z"}).at
    assert utc == at and utc is not None and utc.utcoffset() == timedelta(hours=7)


def test_lead_trigger_fires_early_enumerates_missed_slots_and_pickles() -> None:
    inner = build_trigger(Spec(kind="daily", times=["05:30", "17:00"]))
    lead = LeadTrigger(inner, timedelta(minutes=10))
    first = lead.get_next_fire_time(None, MON)
    assert first == datetime(2026, 11, 23, 16, 50, tzinfo=TIMEZONE)
    # what APScheduler does after a downtime: step from the stored run time up to now, one by one
    later = MON + timedelta(days=1, hours=6)
    missed, t = [], first
    while t is not None and t <= later:
        missed.append(t)
        t = lead.get_next_fire_time(t, later)
    assert [m.strftime("%d %H:%M") for m in missed] == ["23 16:50", "24 05:20", "24 16:50"]
    copy = pickle.loads(pickle.dumps(lead))
    assert isinstance(copy, LeadTrigger) and copy.lead == lead.lead
    assert copy.get_next_fire_time(None, MON) == first


def test_a_once_slot_is_its_only_slot() -> None:
    trig = build_trigger(Spec(kind="once", at=MON + timedelta(hours=1)))
    assert list(slots(trig, MON, MON + timedelta(days=1))) == [MON + timedelta(hours=1)]
    assert list(slots(trig, MON + timedelta(hours=2), MON + timedelta(days=1))) == []


@pytest.mark.parametrize(("spec", "needle"), [
    ({"kind": "daily", "times": ["25:61"]}, "'25:61' is not a time of day"),
    ({"kind": "daily", "times": ["6h5"]}, "minutes with two digits"),
    ({"kind": "daily", "times": ["6h61"]}, "minutes and seconds 00-59"),
    ({"kind": "daily", "times": ["h30"]}, "write hh:mm"),
    ({"kind": "daily", "times": []}, "needs times"),
    ({"kind": "weekly", "times": ["06:00"]}, "needs weekdays"),
    ({"kind": "weekly", "times": ["06:00"], "weekdays": ["funday"]}, "'mon'"),
    ({"kind": "once"}, "needs at"),
    ({"kind": "once", "at": "2026-11-24T05:30", "times": ["05:00"]}, "does not take times"),
    ({"kind": "between", "times": ["06:00"], "start_date": "2026-11-24"}, "needs end_date"),
    ({"kind": "between", "times": ["06:00"], "start_date": "2026-11-24", "end_date": "2026-11-20"},
     "end_date 2026-11-20 is before start_date 2026-11-24"),
    ({"kind": "cron", "cron": "61 * * * *"}, "higher than the maximum value (59)"),
    ({"kind": "cron", "cron": "* * *"}, "has 3"),
    ({"kind": "cron", "cron": "0 6 * * 9"}, "not 0-7 or sun-sat"),
    ({"kind": "cron", "cron": "0 6 * * fri-mon"}, "runs backwards"),
    ({"kind": "hourly"}, "'once'"),
])
def test_bad_specs_say_what_is_wrong(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        Spec.model_validate(spec)
    assert needle.lower() in str(err.value).lower()
