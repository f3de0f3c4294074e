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
from controller.accounts.loginlimit import LOGIN, LoginLimiter
from controller.airing.aircontrol import AirControl
from controller.airing.broadcasts import mark_missed
from controller.airing.delivery import DeliveryService
from controller.airing.delivery_events import DELIVERY, DeliveryStreams
from controller.airing.models import Broadcast, BroadcastStatus
from controller.airing.overdue import OverdueBroadcasts
from controller.airing.ownership import Ownership, Reach
from controller.airing.requests import CANCEL, END_WAITING, REQUEST, AiringRequests
from controller.airing.zone_claims import ZONES, DbZoneClaims, LocalZones
from controller.bulletins.audio_import import import_local_audio
from controller.bulletins.emergency_templates import TemplateAudio
from controller.core.audiostore import DbAudioStore
from controller.core.db import Database
from controller.core.feed import ChangeFeed
from controller.core.netguard import Guard
from controller.core.writer import DbWriter
from controller.fleet.attention import attention_tone
from controller.fleet.client_id import instance_client_id
from controller.fleet.commands import CommandService
from controller.fleet.directory import NodeDirectory
from controller.fleet.gateway_presence import GatewayPresence
from controller.fleet.presence import Presence
from controller.fleet.registry import UNIT, UNIT_ALARM, UNIT_SETTING
from controller.fleet.sync import FleetSync
from controller.fleet.telemetry import TelemetryHistory
from controller.fleet.timesync import TimeResponder
from controller.fleet.windows import ZoneWindows
from controller.live.hub import LiveHub
from controller.live.lease import live_lease
from controller.live.log import LiveRecorder
from controller.relays.hub import STOP_RELAY
from controller.relays.lease import relay_lease
from controller.relays.pull import PullRelayHub
from controller.schedules.airer import ScheduleAirer
from controller.schedules.engine import scheduler_engine
from controller.schedules.lateness import LateAirings
from controller.settings import Settings
from devices.link import ControllerLink
from scheduler import AirScheduler
from scheduler.runner import ScheduleService

logger = logging.getLogger(__name__)

Action = Callable[[], Awaitable[object] | object]  # a start or a stop, sync or async
SCHEDULE = "schedule"  # the change feed's kind for a schedule written here: key = its id


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
    audio: DbAudioStore  # the audio store: every controller's audio in the database, cached locally
    writer: DbWriter
    link: ControllerLink
    presence: Presence
    gateways: GatewayPresence
    air: AirControl
    delivery: DeliveryService
    delivery_streams: DeliveryStreams  # wakes the delivery view's event streams
    scheduler: AirScheduler
    overdue: OverdueBroadcasts  # broadcasts set for later whose controller died before airing them
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
    feed: ChangeFeed  # what other controllers on this database changed, and telling them
    fleet_sync: FleetSync  # units changed elsewhere, applied here
    zones: DbZoneClaims | LocalZones  # zones on air cluster-wide (PostgreSQL), or this controller's alone
    airing_requests: AiringRequests  # cancel / end waiting of a broadcast another controller delivers
    relay_requests: AiringRequests  # stop of a relay another controller runs (the same requests)
    windows: ZoneWindows  # zones' timed power windows
    templates: TemplateAudio  # the emergency templates' audio, rendered once started
    admin_password: str = ""  # set at start when the first admin account is created ("" otherwise)


def _link(settings: Settings) -> ControllerLink:
    m = settings.mqtt
    client_id = instance_client_id(m.client_id, settings.data_dir)
    # an id given by hand and found in use by another client: this controller stops connecting with
    # it (says so in the log and /api/health) rather than evict the other over and over (issue 16)
    return ControllerLink(m.addresses(), prefix=m.prefix, client_id=client_id,
                          refuse_duplicate=bool(m.client_id))


def _relays(settings: Settings, link: ControllerLink, air: AirControl, presence: Presence, db: Database,
            writer: DbWriter, reach: Reach) -> PullRelayHub:
    rs = settings.relay
    lease = relay_lease(db.engine, link.client_id, rs.owner_ttl_s, reach=reach)  # who runs each relay
    return PullRelayHub(link, air, presence, db=db, writer=writer, owner=link.client_id, lease=lease,
                        beat_s=rs.beat_s, guard=Guard(rs.allowed_stations))


def _schedules(settings: Settings, scheduler: AirScheduler, relays: PullRelayHub,
               owner: str, reach: Reach) -> ScheduleRunner:
    """The schedule runner (built cheaply: it reaches the database when started); without the
    broker (``reach``) it hands its lease back for another controller to fire."""
    if not settings.schedule.enabled:
        return NoSchedules()
    airer = ScheduleAirer(default_valid_s=settings.delivery.default_valid_s, owner=owner,
                          to_delivery=scheduler.air_at, to_relays=relays.adopt)
    return ScheduleService(partial(scheduler_engine, settings.db_url, settings.schedule.db_timeout_s),
                           settings.schedule, airer=airer, reach=reach)


def build_services(settings: Settings) -> Services:
    """Every long-lived object, wired together; nothing is started yet."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.audio_dir.mkdir(parents=True, exist_ok=True)
    d = settings.delivery
    db = Database(settings.db_url, timeouts=settings.database.timeouts())
    writer = DbWriter(db, interval=d.flush_s)
    link = _link(settings)
    audio = DbAudioStore(db, settings.audio_dir)  # the audio dir is its local read-through cache
    presence = Presence(link, writer, heartbeat_timeout_s=d.heartbeat_timeout_s)  # tone: at start
    # after Presence: a dead gateway's children become unknown (only its provisioned children)
    gateways = GatewayPresence(link, presence, settings.gateways)
    feed = _feed(settings, db, writer, link.client_id)
    zones = _zones(settings, db, feed, link.client_id)
    air = AirControl(link, presence.groups_of, policy=d.preempt_policy, margin_ms=d.start_margin_ms,
                     margin_floor_ms=d.start_margin_floor_ms, ready_wait_s=d.ready_wait_s,
                     emergency_ready_wait_s=d.emergency_ready_wait_s, gate=zones)
    reach = _reach(settings, db, link)  # no broker, no lease (a partition: another controller delivers)
    owner = Ownership(db.engine, link.client_id, d.owner_ttl_s, reach=reach)  # who delivers each broadcast
    delivery = DeliveryService(db, writer, link, presence, d, audio, air, owner,
                               on_broker_lost=lambda: link.drop_outbox("the broker is out of reach"))
    streams = DeliveryStreams()
    delivery.add_listener(streams.changed)
    delivery.add_listener(LateAirings(db).changed)  # a slot aired late after a restart says so

    def missed(broadcast_id: str, reason: str) -> None:
        with db.session() as s:
            mark_missed(s, broadcast_id, reason)

    scheduler = AirScheduler(delivery.air, on_missed=missed)
    relays = _relays(settings, link, air, presence, db, writer, reach)
    recorder = LiveRecorder(db, writer, link, settings.live, settings.audio_dir, audio)
    delivery.add_listener(partial(feed.later, DELIVERY, durable=False))  # streams on the other controllers
    directory = NodeDirectory()
    commands = CommandService(link, presence, writer, feed)
    sv = Services(
        settings=settings, db=db, audio=audio, writer=writer, link=link, presence=presence, gateways=gateways,
        air=air,
        delivery=delivery, delivery_streams=streams, scheduler=scheduler,
        overdue=OverdueBroadcasts(db, scheduler.air_at, waiting=scheduler.waiting, grace_s=d.owner_ttl_s,
                                  every_s=d.owner_renew_s),
        timesync=TimeResponder(link, online=presence.online_count),
        commands=commands, windows=ZoneWindows(db, commands, interval_s=settings.mqtt.windows_tick_s),
        telemetry=TelemetryHistory(link, presence, writer),
        node_directory=directory, verifier=Verifier(), login_limiter=LoginLimiter(settings.login),
        relays=relays, schedules=_schedules(settings, scheduler, relays, link.client_id, reach),
        live_recorder=recorder, live_hub=LiveHub(
            link, air, presence, observer=recorder, renew_s=d.owner_renew_s,
            lease=live_lease(db.engine, link.client_id, d.owner_ttl_s, reach=reach)), feed=feed,
        fleet_sync=FleetSync(db, presence, directory, on_retired=delivery.forget_node), zones=zones,
        airing_requests=AiringRequests(db, feed, link.client_id, owned=delivery.owns, flush=writer.flush,
                                       actions={CANCEL: delivery.cancel, END_WAITING: delivery.end_waiting}),
        relay_requests=AiringRequests(db, feed, link.client_id, owned=relays.runs, flush=writer.flush,
                                      actions={STOP_RELAY: relays.stop}),
        templates=TemplateAudio(settings.tts, settings.cache_dir, db))
    _follow(sv)
    return sv


def _feed(settings: Settings, db: Database, writer: DbWriter, origin: str) -> ChangeFeed:
    cfg = settings.database
    return ChangeFeed(db, writer, origin, poll_s=cfg.feed_poll_s, keep_s=cfg.feed_keep_s,
                      retry_s=cfg.feed_retry_s)


def _reach(settings: Settings, db: Database, link: ControllerLink) -> Reach:
    """Is the broker passing this controller's probe back? Only asked with a shared database (a
    controller alone has nobody to hand its broadcasts to)."""
    lost_s = settings.delivery.broker_lost_s
    if lost_s is None:
        lost_s = 4.0 if db.engine.dialect.name == "postgresql" else 0.0
    if lost_s <= 0:
        return lambda: True
    return lambda: link.broker_silent_s() < lost_s


def _zones(settings: Settings, db: Database, feed: ChangeFeed, holder: str) -> DbZoneClaims | LocalZones:
    """Zones on air in the database when several controllers may share it (PostgreSQL by default)."""
    d = settings.delivery
    shared = d.cluster_zones if d.cluster_zones is not None else db.engine.dialect.name == "postgresql"
    if not shared:
        return LocalZones()
    return DbZoneClaims(db.engine, holder, feed, ttl_s=d.owner_ttl_s, renew_s=d.owner_renew_s)


def _follow(sv: Services) -> None:
    """What other controllers change, applied here (docs/architecture.md, "Several controllers")."""
    sv.feed.on(UNIT, sv.fleet_sync.units)
    sv.feed.on(UNIT_SETTING, sv.fleet_sync.units)
    sv.feed.on(UNIT_ALARM, sv.fleet_sync.alarms)
    sv.feed.on(DELIVERY, sv.delivery_streams.changed_elsewhere)
    sv.feed.on(LOGIN, sv.login_limiter.apply_shared)  # the failed-login backoff counts cluster-wide
    sv.feed.on(REQUEST, sv.airing_requests.changed)  # a command to a broadcast we deliver
    sv.feed.on(REQUEST, sv.relay_requests.changed)  # ... or to a relay we run
    sv.feed.on(ZONES, sv.zones.changed)  # zones taken or given back elsewhere: a waiting item may start

    def schedules(keys: frozenset[str] | None) -> None:
        for key in keys or ():  # None: the runner's own reconcile (every reconcile_s) sees them all
            sv.schedules.changed(int(key))

    sv.feed.on(SCHEDULE, schedules)


async def _load(sv: Services) -> None:
    """From the migrated database: the first admin, the unit registry, pending commands, the
    attention tone (from the audio store, with the audio files this controller has that the store
    lacks put in first)."""
    await asyncio.to_thread(import_local_audio, sv.db, sv.audio, sv.settings.audio_dir)
    sv.presence.use_attention(await asyncio.to_thread(attention_tone, sv.audio))
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
    await asyncio.to_thread(sv.db.migrate, sv.settings.data_dir)


def lifecycle(sv: Services) -> list[Step]:
    """The start order (stopped in reverse): the database first, the broker link once everything
    that answers the units is loaded, the relays and schedules once airing runs."""
    return [
        Step("database", lambda: _migrate(sv), sv.db.dispose),
        Step("change log mark", sv.feed.mark),  # before the caches load: later changes are applied
        Step("registry", lambda: _load(sv)),
        Step("writer", sv.writer.start, sv.writer.stop),
        Step("presence", sv.presence.start, sv.presence.stop),
        Step("telemetry", sv.telemetry.start, sv.telemetry.stop),
        Step("delivery", sv.delivery.start, sv.delivery.stop),
        Step("air control", sv.air.start, sv.air.stop),
        Step("zone claims", sv.zones.start, sv.zones.stop),
        Step("broker link", sv.link.start, sv.link.stop),
        Step("change feed", sv.feed.start, sv.feed.stop),
        Step("airing requests", sv.airing_requests.start, sv.airing_requests.stop),
        Step("zone windows", sv.windows.start, sv.windows.stop),
        Step("air scheduler", lambda: _start_scheduler(sv), sv.scheduler.stop),
        Step("overdue broadcasts", sv.overdue.start, sv.overdue.stop),  # a dead controller's timers
        # relays: re-armed at start; at stop the units are stopped and the rows kept to resume from
        Step("relays", sv.relays.restore, sv.relays.close),
        Step("relay requests", sv.relay_requests.start, sv.relay_requests.stop),
        Step("schedules", sv.schedules.start, sv.schedules.stop),
        Step("live recorder", sv.live_recorder.start, sv.live_recorder.close),  # waits for encodes
        # stopped first: open sessions end "shutdown", recorded; at start, a dead owner's sessions end
        Step("live", sv.live_hub.start, sv.live_hub.stop),
        Step("emergency templates", sv.templates.start, sv.templates.stop),  # in the background
    ]


async def start_services(sv: Services) -> None:
    await start_all(lifecycle(sv))


async def stop_services(sv: Services) -> None:
    await stop_all(lifecycle(sv))
