"""controller/schedules/crud.py on a real SQLite ward: a once slot is judged against the moment
its request was received (measured once by the route), not against the clock after the checks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from controller.api.schemas import ScheduleCreate, ScheduleUpdate
from controller.core.db import Database
from controller.core.errors import ServiceError
from controller.schedules.crud import create_schedule, schedule_view, update_schedule
from scheduler.clock import TIMEZONE, epoch_ms
from tests.scheduler.ward import make_ward, session

AT = datetime(2026, 3, 1, 6, 0, tzinfo=TIMEZONE)  # long past on the wall clock


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    ward = make_ward(f"sqlite:///{tmp_path / 'ward.db'}")
    yield ward
    ward.dispose()


def body(at: datetime) -> ScheduleCreate:
    return ScheduleCreate.model_validate({"bulletin_id": 1, "target": {"zones": ["z1"]},
                                          "when": {"kind": "once", "at": at.isoformat()}})


def test_a_once_slot_after_the_receipt_is_accepted_however_long_the_checks_take(db: Database) -> None:
    with session(db) as s:
        row = create_schedule(s, body(AT), created_by="op", received_ms=epoch_ms(AT) - 1)
        assert row.id is not None and row.spec["at"] == AT.isoformat()
        with pytest.raises(ServiceError) as err:
            create_schedule(s, body(AT), created_by="op", received_ms=epoch_ms(AT))
        assert err.value.status == 422
        assert "is in the past (now 2026-03-01T06:00:00+07:00)" in err.value.message
        change = ScheduleUpdate.model_validate({"when": {"kind": "once", "at": AT.isoformat()}})
        with pytest.raises(ServiceError):
            update_schedule(s, row.id, change, received_ms=epoch_ms(AT) + 1000)
        moved = update_schedule(s, row.id, change, received_ms=epoch_ms(AT) - 1000)
        assert moved.version == 2


def test_views_are_what_the_api_shows(db: Database) -> None:
    with session(db) as s:
        row = create_schedule(s, body(AT), created_by="op", received_ms=epoch_ms(AT) - 1)
        view = schedule_view(s, row)
    assert view["bulletin_title"] == "Họp tổ dân phố" and view["target"] == {"all": False, "zones": ["z1"],
                                                                            "nodes": []}
    assert view["next_slots"] == [] and view["created_at"].endswith("+07:00") and view["relay"] is None
