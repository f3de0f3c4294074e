"""The long-lived services: each built once here, started in one listed order, stopped in reverse.

:func:`build_services` constructs every long-lived object of the controller (nothing is created
later or lazily on ``app.state``); construction is cheap and touches neither the database nor the
broker. :func:`lifecycle` is the start order, written once: :func:`start_services` walks it
forwards (a failing start stops what had started, in reverse, and re-raises) and
:func:`stop_services` walks it backwards. Routes get the services through
``controller.api.deps.ServicesDep``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from sqlmodel import select

from controller.accounts.auth import Verifier, ensure_admin
from controller.accounts.loginlimit import LoginLimiter
from controller.airing.aircontrol import AirControl
from controller.airing.broadcasts import mark_missed
from controller.airing.delivery import DeliveryService
from controller.airing.delivery_events import DeliveryStreams
from controller.airing.models import Broadcast, BroadcastStatus
from controller.core.db import Database
from controller.core.netguard import Guard
from controller.core.writer import DbWriter
from controller.fleet.attention import attention_tone
from controller.fleet.client_id import instance_client_id
from controller.fleet.commands import CommandService
from controller.fleet.directory import NodeDirectory
from controller.fleet.gateway_presence import GatewayPresence
from controller.fleet.presence import Presence
from controller.fleet.telemetry import TelemetryHistory
from controller.fleet.timesync import TimeResponder
from controller.live.hub import LiveHub
from controller.live.log import LiveRecorder
from controller.relays.pull import PullRelayHub
from controller.schedules.airer import ScheduleAirer
from controller.schedules.engine import scheduler_engine
from controller.schedules.lateness import LateAirings
from controller.settings import Settings
from devices.link import ControllerLink
from devices.mqtt import BrokerAddress
from scheduler import AirScheduler
from scheduler.runner import ScheduleService

logger = logging.getLogger(__name__)

Action = Callable[[], Awaitable[object] | object]  # a start or a stop, sync or async


class Lifecycle(Protocol):
    """Something started with the controller and stopped with it."""

    @property
    def name(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def _nothing() -> None:
    return None


async def _call(fn: Action) -> None:
    result = fn()
    if inspect.isawaitable(result):
        await result


@dataclass(frozen=True)
class Step:
    """One entry of the start list: how a service starts and how it stops (either may be sync)."""
    name: str
    up: Action = _nothing
    down: Action = _nothing

    async def start(self) -> None:
        await _call(self.up)

    async def stop(self) -> None:
        await _call(self.down)


async def start_all(steps: Sequence[Lifecycle]) -> None:
    """Start in list order; if one fails, stop the ones already started (in reverse) and re-raise."""
    started: list[Lifecycle] = []
    for step in steps:
        try:
            await step.start()
        except BaseException:
            logger.error("starting %s failed; stopping the %d service(s) already started",
                         step.name, len(started))
            await stop_all(started)
            raise
        started.append(step)
        logger.debug("started %s", step.name)


async def stop_all(steps: Sequence[Lifecycle]) -> None:
    """Stop in reverse list order; a failing stop is logged and the rest still stop."""
    for step in reversed(steps):
        try:
            await step.stop()
        except Exception:
            logger.exception("stopping %s failed", step.name)


class ScheduleRunner(Protocol):
    """What the controller asks of the schedule runner (scheduler/runner.py)."""
    leading: bool

    def changed(self, schedule_id: int) -> None: ...

    def status(self) -> dict[str, Any]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class NoSchedules:
    """The runner of a controller that fires no schedules (``schedule.enabled`` off)."""
    leading = False

    def changed(self, schedule_id: int) -> None:
        return None  # the controller that fires them picks the change up

    def status(self) -> dict[str, Any]:
        return {"me": None, "leading": False, "lease": None, "last_error": "schedules are disabled here"}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@dataclass
class Services:
    settings: Settings
    db: Database
    writer: DbWriter
    link: ControllerLink
    presence: Presence
    gateways: GatewayPresence
    air: AirControl
    delivery: DeliveryService
    delivery_streams: DeliveryStreams  # wakes the delivery view's event streams
    scheduler: AirScheduler
    timesync: TimeResponder
    commands: CommandService
    telemetry: TelemetryHistory
    node_directory: NodeDirectory  # the unit list's cached static rows
    verifier: Verifier
    login_limiter: LoginLimiter  # failed-login backoff
    relays: PullRelayHub  # relay sessions (tiếp sóng)
    schedules: ScheduleRunner
    live_recorder: LiveRecorder  # the live log and archive
    live_hub: LiveHub  # live broadcasts from a phone
    admin_password: str = ""  # set at start when the first admin account is created ("" otherwise)


def _link(settings: Settings) -> ControllerLink:
    m = settings.mqtt
    broker = BrokerAddress(host=m.host, port=m.port, username=m.username, password=m.password,
                           tls=m.tls, ca_file=m.ca_file)
    client_id = instance_client_id(m.client_id, settings.data_dir)
    return ControllerLink(broker, prefix=m.prefix, client_id=client_id)


def _relays(settings: Settings, link: ControllerLink, air: AirControl, presence: Presence, db: Database,
            writer: DbWriter) -> PullRelayHub:
    rs = settings.relay
    return PullRelayHub(link, air, presence, db=db, writer=writer, owner=link.client_id,
                        beat_s=rs.beat_s, owner_ttl_s=rs.owner_ttl_s, guard=Guard(rs.allowed_stations))


def _schedules(settings: Settings, scheduler: AirScheduler, relays: PullRelayHub,
               owner: str) -> ScheduleRunner:
    """The schedule runner (built cheaply: it reaches the database when started)."""
    if not settings.schedule.enabled:
        return NoSchedules()
    airer = ScheduleAirer(default_valid_s=settings.delivery.default_valid_s, owner=owner,
                          to_delivery=scheduler.air_at, to_relays=relays.adopt)
    return ScheduleService(partial(scheduler_engine, settings.db_url, settings.schedule.db_timeout_s),
                           settings.schedule, airer=airer)


def build_services(settings: Settings) -> Services:
    """Every long-lived object, wired together; nothing is started yet."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.audio_dir.mkdir(parents=True, exist_ok=True)
    d = settings.delivery
    db = Database(settings.db_url, timeouts=settings.database.timeouts())
    writer = DbWriter(db, interval=d.flush_s)
    link = _link(settings)
    presence = Presence(link, writer, heartbeat_timeout_s=d.heartbeat_timeout_s,
                        attention=attention_tone(settings.data_dir))
    # after Presence: a dead gateway's children become unknown (only its provisioned children)
    gateways = GatewayPresence(link, presence, settings.gateways)
    air = AirControl(link, presence.groups_of, policy=d.preempt_policy, margin_ms=d.start_margin_ms,
                     margin_floor_ms=d.start_margin_floor_ms, ready_wait_s=d.ready_wait_s,
                     emergency_ready_wait_s=d.emergency_ready_wait_s)
    delivery = DeliveryService(db, writer, link, presence, d, settings.audio_dir, air)
    streams = DeliveryStreams()
    delivery.add_listener(streams.changed)
    delivery.add_listener(LateAirings(db).changed)  # a slot aired late after a restart says so

    def missed(broadcast_id: str, reason: str) -> None:
        with db.session() as s:
            mark_missed(s, broadcast_id, reason)

    scheduler = AirScheduler(delivery.air, on_missed=missed)
    relays = _relays(settings, link, air, presence, db, writer)
    recorder = LiveRecorder(db, writer, link, settings.live, settings.audio_dir)
    return Services(
        settings=settings, db=db, writer=writer, link=link, presence=presence, gateways=gateways, air=air,
        delivery=delivery, delivery_streams=streams, scheduler=scheduler, timesync=TimeResponder(link),
        commands=CommandService(link, presence, writer), telemetry=TelemetryHistory(link, presence, writer),
        node_directory=NodeDirectory(), verifier=Verifier(), login_limiter=LoginLimiter(settings.login),
        relays=relays, schedules=_schedules(settings, scheduler, relays, link.client_id),
        live_recorder=recorder, live_hub=LiveHub(link, air, presence, observer=recorder))


def _load(sv: Services) -> None:
    """From the migrated database: the first admin, the unit registry, pending commands."""
    with sv.db.session() as s:
        sv.admin_password = ensure_admin(s, sv.settings.admin_password) or ""
        sv.presence.load(s)
        sv.commands.load(s)


def _start_scheduler(sv: Services) -> None:
    """Start the air-time scheduler and hand it every broadcast still waiting for its slot."""
    with sv.db.session() as s:
        scheduled = s.exec(select(Broadcast).where(
            Broadcast.status == BroadcastStatus.SCHEDULED.value)).all()
    sv.scheduler.start()
    for bc in scheduled:
        sv.scheduler.air_at(bc.id, bc.air_at)


async def _migrate(sv: Services) -> None:
    await asyncio.to_thread(sv.db.migrate)


def lifecycle(sv: Services) -> list[Step]:
    """The start order (stopped in reverse): the database first, the broker link once everything
    that answers the units is loaded, the relays and schedules once airing runs."""
    return [
        Step("database", lambda: _migrate(sv), sv.db.dispose),
        Step("registry", lambda: _load(sv)),
        Step("writer", sv.writer.start, sv.writer.stop),
        Step("presence", sv.presence.start, sv.presence.stop),
        Step("telemetry", sv.telemetry.start, sv.telemetry.stop),
        Step("delivery", sv.delivery.start, sv.delivery.stop),
        Step("air control", sv.air.start, sv.air.stop),
        Step("broker link", sv.link.start, sv.link.stop),
        Step("air scheduler", lambda: _start_scheduler(sv), sv.scheduler.stop),
        # relays: re-armed at start; at stop the units are stopped and the rows kept to resume from
        Step("relays", sv.relays.restore, sv.relays.close),
        Step("schedules", sv.schedules.start, sv.schedules.stop),
        Step("live recorder", sv.live_recorder.start, sv.live_recorder.close),  # waits for encodes
        Step("live", down=sv.live_hub.close),  # stopped first: open sessions end "shutdown", recorded
    ]


async def start_services(sv: Services) -> None:
    await start_all(lifecycle(sv))


async def stop_services(sv: Services) -> None:
    await stop_all(lifecycle(sv))
