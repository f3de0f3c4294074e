"""controller/services.py without a broker: every service built once (none Optional), started in
the declared order, stopped in reverse, and a failing start stops what had already started."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import pytest

from controller.services import (
    Lifecycle,
    NoSchedules,
    Services,
    Step,
    build_services,
    lifecycle,
    start_all,
    stop_all,
)
from devices.broker import free_port
from scheduler.settings import ScheduleSettings
from tests.conftest import ADMIN, make_settings

pytestmark = pytest.mark.timeout(60)

DECLARED = ["database", "change log mark", "registry", "writer", "presence", "telemetry", "delivery",
            "air control", "zone claims", "broker link", "change feed", "airing requests", "zone windows",
            "air scheduler", "overdue broadcasts",
            "relays", "relay requests", "schedules", "live recorder", "live", "emergency templates"]


class Recorded:
    """A lifecycle entry that writes its start and stop into ``log`` (and may fail its start)."""

    def __init__(self, inner: Lifecycle, log: list[str], *, fail: bool = False) -> None:
        self.inner = inner
        self.log = log
        self.fail = fail

    @property
    def name(self) -> str:
        return self.inner.name

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fail:
            raise RuntimeError(f"{self.name} cannot start")
        await self.inner.start()

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        await self.inner.stop()


def test_no_service_field_is_optional() -> None:
    hints = typing.get_type_hints(Services)
    for f in dataclasses.fields(Services):
        assert types.NoneType not in typing.get_args(hints[f.name]), f"Services.{f.name} is Optional"


async def test_start_in_list_order_and_stop_in_reverse() -> None:
    log: list[str] = []
    steps = [Recorded(Step(n), log) for n in ("a", "b", "c")]
    await start_all(steps)
    await stop_all(steps)
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


async def test_sync_and_async_actions_both_run() -> None:
    ran: list[str] = []

    async def later() -> None:
        ran.append("async")

    step = Step("mixed", lambda: ran.append("sync"), later)
    await step.start()
    await step.stop()
    assert ran == ["sync", "async"]


async def test_a_failing_start_stops_what_had_started_and_raises() -> None:
    log: list[str] = []
    steps = [Recorded(Step("a"), log), Recorded(Step("b"), log), Recorded(Step("c"), log, fail=True),
             Recorded(Step("d"), log)]
    with pytest.raises(RuntimeError, match="c cannot start"):
        await start_all(steps)
    assert log == ["start a", "start b", "start c", "stop b", "stop a"]  # c never started, d never tried


async def test_a_failing_stop_does_not_keep_the_others_running() -> None:
    stopped: list[str] = []

    def broken() -> None:
        raise RuntimeError("stuck")

    steps = [Step("a", down=lambda: stopped.append("a")), Step("b", down=broken),
             Step("c", down=lambda: stopped.append("c"))]
    await stop_all(steps)
    assert stopped == ["c", "a"]


async def test_the_declared_order(tmp_path: Path) -> None:
    sv = build_services(make_settings(tmp_path, free_port()))
    assert [s.name for s in lifecycle(sv)] == DECLARED
    assert sv.settings.audio_dir.is_dir() and not sv.link.connected  # built, nothing started
    sv.db.dispose()


async def test_the_real_services_start_and_stop_in_order_without_a_broker(tmp_path: Path) -> None:
    sv = build_services(make_settings(tmp_path, free_port()))  # nobody listens on that port
    log: list[str] = []
    steps = [Recorded(s, log) for s in lifecycle(sv)]
    await start_all(steps)
    try:
        assert sv.admin_password == ADMIN[1]  # the first admin was created by the registry step
        assert not isinstance(sv.schedules, NoSchedules)  # the runner of scheduler/runner.py
    finally:
        await stop_all(steps)
    assert log == [f"start {n}" for n in DECLARED] + [f"stop {n}" for n in reversed(DECLARED)]


async def test_a_controller_firing_no_schedules_says_so(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, free_port()).model_copy(
        update={"schedule": ScheduleSettings(enabled=False)})
    sv = build_services(settings)
    assert isinstance(sv.schedules, NoSchedules)
    assert sv.schedules.status()["last_error"] == "schedules are disabled here"
    sv.schedules.changed(1)  # nothing to do, nothing raised
    sv.db.dispose()
