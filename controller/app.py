"""The app factory and the long-lived services, started and stopped in a fixed order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlmodel import select

from controller.accounts import audit
from controller.aircontrol import AirControl
from controller.auth import Verifier, ensure_admin
from controller.commands import CommandService
from controller.db import Database
from controller.delivery import DeliveryService
from controller.gateway_presence import GatewayPresence
from controller.loginlimit import LoginLimiter
from controller.models import Broadcast, BroadcastStatus
from controller.netguard import Guard
from controller.presence import Presence
from controller.relays import RelayHub
from controller.service import ServiceError, mark_missed
from controller.settings import Settings
from controller.telemetry import TelemetryHistory
from controller.timesync import TimeResponder
from controller.writer import DbWriter
from devices.link import ControllerLink
from devices.mqtt import BrokerAddress
from scheduler import AirScheduler
from scheduler.runner import ScheduleService

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


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
    from controller.relay_pull import PullRelayHub
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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sv = build_services(settings)
        app.state.services = sv
        await start_services(sv)
        from controller.api.live import recorder
        recorder(app.state)  # the live log/archive, and its retention sweep from the start
        if sv.admin_password:
            logger.warning("first admin account: admin / %s (shown once; change it)", sv.admin_password)
        try:
            yield
        finally:
            rec = getattr(app.state, "live_recorder", None)
            if rec is not None:
                await rec.close()  # waits for archives being encoded
            await stop_services(sv)

    app = FastAPI(title="loaphuong", version="0.1.0", lifespan=lifespan,
                  description="Ward public-address controller (loa phường)",
                  docs_url=None, redoc_url=None, openapi_url=None)  # behind login: controller/api/apidocs.py

    @app.middleware("http")
    async def _audit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Every state-changing API request by a known user goes to the audit log."""
        response = await call_next(request)
        user = request.scope.get("lp_user")
        if user and request.method not in ("GET", "HEAD", "OPTIONS") and request.url.path.startswith("/api/"):
            sv: Services = request.app.state.services

            def write() -> None:
                with sv.db.session() as s:
                    audit(s, user, f"{request.method} {request.url.path}", detail=str(response.status_code))

            await asyncio.to_thread(write)
        return response

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # an id or number beyond what the database stores (64-bit): it cannot name anything
        return JSONResponse(status_code=422, content={"detail": "a number in the request is out of range"})

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": exc.message})

    from controller.api import apidocs, router
    from controller.api.methods import UiMount, method_not_allowed

    app.add_exception_handler(405, method_not_allowed)  # the path's Allow, not the static files'
    from controller.ui import router as ui_router

    app.include_router(router)
    app.include_router(apidocs.router)
    app.include_router(ui_router)
    app.router.routes.append(UiMount("/", app=StaticFiles(directory=STATIC, html=True), name="ui"))
    from controller.api.limits import RequestLimits
    from controller.api.recordings import UPLOAD_PATH, upload_body_limit

    # outermost: sizes and authentication before any body is read
    app.add_middleware(RequestLimits, max_body=settings.http.max_body_kb * 1024,  # type: ignore[arg-type]
                       larger={UPLOAD_PATH: upload_body_limit(settings.tts)})
    return app
