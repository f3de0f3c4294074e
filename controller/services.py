"""The long-lived services: built once, started in a fixed order, stopped in reverse."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlmodel import select

from controller.accounts.auth import Verifier, ensure_admin
from controller.accounts.loginlimit import LoginLimiter
from controller.airing.aircontrol import AirControl
from controller.airing.broadcasts import mark_missed
from controller.airing.delivery import DeliveryService
from controller.airing.models import Broadcast, BroadcastStatus
from controller.core.db import Database
from controller.core.netguard import Guard
from controller.core.writer import DbWriter
from controller.fleet.commands import CommandService
from controller.fleet.gateway_presence import GatewayPresence
from controller.fleet.presence import Presence
from controller.fleet.telemetry import TelemetryHistory
from controller.fleet.timesync import TimeResponder
from controller.relays.hub import RelayHub
from controller.settings import Settings
from devices.link import ControllerLink
from devices.mqtt import BrokerAddress
from scheduler import AirScheduler
from scheduler.runner import ScheduleService

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    writer: DbWriter
    link: ControllerLink
    presence: Presence
    delivery: DeliveryService
    scheduler: AirScheduler
    verifier: Verifier
    air: AirControl
    timesync: TimeResponder
    commands: CommandService
    telemetry: TelemetryHistory
    login_limiter: LoginLimiter = field(default_factory=LoginLimiter)  # failed-login backoff
    admin_password: str | None = None
    schedules: ScheduleService | None = None  # created in start_services (after migrations)
    relays: RelayHub | None = None  # relay sessions (tiếp sóng), created in start_services


def build_services(settings: Settings) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.audio_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    writer = DbWriter(db, interval=settings.delivery.flush_s)
    m = settings.mqtt
    broker = BrokerAddress(host=m.host, port=m.port, username=m.username, password=m.password,
                           tls=m.tls, ca_file=m.ca_file)
    link = ControllerLink(broker, prefix=m.prefix, client_id=m.client_id)
    presence = Presence(link, writer, heartbeat_timeout_s=settings.delivery.heartbeat_timeout_s)
    # after Presence: a dead gateway's children become unknown (only its provisioned children)
    GatewayPresence(link, presence, settings.gateways)
    air = AirControl(link, lambda n: presence.nodes[n].groups if n in presence.nodes else [],
                     policy=settings.delivery.preempt_policy, margin_ms=settings.delivery.start_margin_ms,
                     ready_wait_s=settings.delivery.ready_wait_s)
    delivery = DeliveryService(db, writer, link, presence, settings.delivery, settings.audio_dir, air)
    timesync = TimeResponder(link)
    commands = CommandService(link, presence, writer)
    telemetry = TelemetryHistory(link, presence, writer)

    def missed(broadcast_id: str, reason: str) -> None:
        with db.session() as s:
            mark_missed(s, broadcast_id, reason)

    scheduler = AirScheduler(delivery.air, on_missed=missed)
    return Services(settings, db, writer, link, presence, delivery, scheduler, Verifier(), air, timesync,
                    commands, telemetry, login_limiter=LoginLimiter(settings.login))


async def start_services(sv: Services) -> None:
    """Database → writer → presence → MQTT link → delivery → scheduler."""
    await asyncio.to_thread(sv.db.migrate)
    with sv.db.session() as s:
        sv.admin_password = ensure_admin(s, sv.settings.admin_password)
        sv.presence.load(s)
        sv.commands.load(s)
        scheduled = s.exec(select(Broadcast).where(
            Broadcast.status == BroadcastStatus.SCHEDULED.value)).all()
    sv.writer.start()
    sv.presence.start()
    sv.telemetry.start()
    await sv.delivery.start()
    sv.air.start()
    sv.link.start()
    sv.scheduler.start()
    for bc in scheduled:
        sv.scheduler.air_at(bc.id, bc.air_at)
    from controller.relays.pull import PullRelayHub
    rs = sv.settings.relay
    relays = PullRelayHub(sv.link, sv.air, sv.presence, db=sv.db, writer=sv.writer, owner=sv.link.client_id,
                          beat_s=rs.beat_s, owner_ttl_s=rs.owner_ttl_s, guard=Guard(rs.allowed_stations))
    sv.relays = relays
    await relays.restore()
    if sv.settings.schedule.enabled:
        sv.schedules = ScheduleService(sv.settings.db_url, sv.settings.schedule, air=sv.scheduler.air_at,
                                       default_valid_s=sv.settings.delivery.default_valid_s,
                                       relay=relays.adopt, owner=sv.link.client_id)
        await sv.schedules.start()


async def stop_services(sv: Services) -> None:
    if sv.relays is not None:
        await sv.relays.close()  # stops the units; the relays resume when the controller is back
    if sv.schedules is not None:
        await sv.schedules.stop()
    sv.scheduler.stop()
    await sv.air.stop()
    await sv.delivery.stop()
    await sv.telemetry.stop()
    await sv.presence.stop()
    await sv.link.stop()
    await sv.writer.stop()
    sv.db.dispose()
