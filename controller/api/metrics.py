"""``GET /metrics``: the controller's state in the Prometheus text format (docs/deploy.md "Monitoring").

Read at scrape time from what the services keep: broadcasts and deliveries by state (the database),
units by presence status, the latency of units' answers to commands, the database writer's queue,
the broker link (up, reconnects, duplicate client id, publishes not yet acknowledged) and whether
this controller leads the schedules.

Nobody without permission reads it: with ``metrics.token`` set, a request must carry
``Authorization: Bearer <token>``; without one, only a request from this machine's loopback that
no proxy forwarded (no ``X-Forwarded-For`` / ``Forwarded`` / ``X-Real-IP``) is answered, so a
local reverse proxy does not open it to the network.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func
from sqlmodel import select

from controller.airing.models import Broadcast, BroadcastStatus, Delivery, DeliveryState
from controller.api.deps import ServicesDep
from controller.core.metrics import CONTENT_TYPE, Exposition, Sample
from controller.services import Services
from devices.mqtt import DUPLICATE_FLAPS

logger = logging.getLogger(__name__)

router = APIRouter(tags=["monitoring"])

FORWARDED = ("x-forwarded-for", "forwarded", "x-real-ip")
UNIT_STATUSES = ("online", "offline", "shutdown", "unknown")

REFUSED_LOCAL = ("Chỉ đọc được /metrics từ chính máy này, hoặc với mã truy cập (metrics.token) / "
                 "/metrics is readable only from this machine, or with the access token (metrics.token)")
REFUSED_TOKEN = ("Thiếu hoặc sai mã truy cập /metrics (Authorization: Bearer) / "
                 "missing or wrong /metrics access token (Authorization: Bearer)")


def refusal(request: Request, token: str | None) -> JSONResponse | None:
    """None when the request may read the metrics, else the answer that refuses it."""
    if token is not None:
        sent = request.headers.get("authorization", "")
        if hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return None
        return JSONResponse({"detail": REFUSED_TOKEN, "code": "metrics_token"}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="loaphuong-metrics"'})
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if local and not any(h in request.headers for h in FORWARDED):
        return None
    return JSONResponse({"detail": REFUSED_LOCAL, "code": "metrics_local_only"}, status_code=403)


def _counts(sv: Services) -> tuple[dict[str, int], dict[str, int]]:
    """Broadcasts by status and deliveries by state (worker thread)."""
    with sv.db.session() as s:
        bcs = s.exec(select(Broadcast.status, func.count()).group_by(Broadcast.status)).all()
        dels = s.exec(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
    return {str(k): int(n) for k, n in bcs}, {str(k): int(n) for k, n in dels}


def _by_state(counts: dict[str, int], known: list[str], label: str) -> list[Sample]:
    """Every known state (0 when none), then any other value the table holds."""
    names = known + sorted(set(counts) - set(known))
    return [Sample({label: k}, counts.get(k, 0)) for k in names]


async def _database(out: Exposition, sv: Services) -> None:
    try:
        bcs, dels = await asyncio.to_thread(_counts, sv)
    except Exception as exc:  # noqa: BLE001 - the scrape still answers; the gauge says why
        logger.warning("metrics: the database could not be counted: %s", exc)
        out.gauge("loaphuong_database_up", "1 when the database answered this scrape's counts", 0)
        return
    out.gauge("loaphuong_database_up", "1 when the database answered this scrape's counts", 1)
    out.gauge("loaphuong_broadcasts", "broadcasts in the database by status",
              _by_state(bcs, [s.value for s in BroadcastStatus], "status"))
    out.gauge("loaphuong_deliveries", "per-unit deliveries in the database by state",
              _by_state(dels, [s.value for s in DeliveryState], "state"))


def _airing(out: Exposition, sv: Services) -> None:
    out.gauge("loaphuong_broadcasts_in_flight", "broadcasts this controller is delivering now",
              sv.delivery.active_count())
    out.gauge("loaphuong_broadcasts_waiting", "broadcasts waiting in this controller's air timer",
              len(sv.scheduler.pending()))
    statuses = [sv.presence.status(n) for n in sv.presence.node_ids()]
    out.gauge("loaphuong_units", "provisioned units by presence status (unknown also while the broker "
              "link is down)", [Sample({"status": st}, statuses.count(st)) for st in UNIT_STATUSES])
    out.gauge("loaphuong_units_total", "provisioned units", len(statuses))
    out.histogram("loaphuong_unit_answer_seconds",
                  "time from a command's send to a unit's answer: play (air control, the start margin's "
                  "measure of reaching and handling) and staff commands (sent to each answer)",
                  [({"command": "play"}, sv.air.margin.histogram),
                   ({"command": "staff"}, sv.commands.latency)])


def _queues(out: Exposition, sv: Services) -> None:
    w = sv.writer
    out.gauge("loaphuong_db_writer_queue", "database writes queued in the batched writer", w.backlog)
    out.counter("loaphuong_db_writer_dropped_total", "writes dropped because the queue was full",
                w.dropped_ops)
    out.counter("loaphuong_db_writer_failed_total", "writes that failed on their own and were dropped",
                w.failed_ops)
    out.counter("loaphuong_db_writer_errors_total", "flushes that found the database unavailable",
                w.db_errors)
    out.gauge("loaphuong_mqtt_outbox", "publishes not yet acknowledged by the broker", sv.link.client.outbox)


def _broker(out: Exposition, sv: Services) -> None:
    c = sv.link.client
    out.gauge("loaphuong_mqtt_up", "1 while the broker link is connected", int(c.is_connected))
    out.counter("loaphuong_mqtt_connects_total", "successful connections to the broker", c.stats.connects)
    out.counter("loaphuong_mqtt_reconnects_total", "connections after the first one",
                max(0, c.stats.connects - 1))
    out.counter("loaphuong_mqtt_connect_failures_total", "connection attempts that failed",
                c.stats.connect_failures)
    out.gauge("loaphuong_mqtt_duplicate_client_id", "1 when connections keep closing right after opening: "
              "another client probably uses this controller's client id", int(c.flaps >= DUPLICATE_FLAPS))
    out.counter("loaphuong_mqtt_messages_in_total", "messages received", c.stats.msgs_in)
    out.counter("loaphuong_mqtt_messages_out_total", "messages published", c.stats.msgs_out)
    out.counter("loaphuong_mqtt_handler_errors_total", "received messages whose handler failed",
                c.stats.handler_errors)
    out.counter("loaphuong_mqtt_rejected_total", "unit messages refused (bad payload, wrong topic, ...)",
                [Sample({"reason": k}, v) for k, v in sorted(sv.link.rejected.items())])
    out.gauge("loaphuong_scheduler_leader", "1 when this controller holds the schedule lease",
              int(bool(sv.schedules.leading)))
    out.gauge("loaphuong_info", "this controller's identity",
              [Sample({"client_id": sv.link.client_id, "ward": sv.settings.ward_name}, 1)])


def _feed(out: Exposition, sv: Services) -> None:
    """The change feed: how the other controllers' changes reach this one (docs/architecture.md)."""
    f, listener = sv.feed, sv.feed.listener
    out.gauge("loaphuong_feed_listening", "1 while the change feed's LISTEN connection is up (SQLite: 1)",
              int(f.live()))
    out.counter("loaphuong_feed_changes_total", "changes of other controllers applied here, by how they came",
                [Sample({"via": "notify"}, f.stats["notified"]),
                 Sample({"via": "poll"}, f.stats["from_poll"])])
    out.counter("loaphuong_feed_listen_losses_total", "times the LISTEN connection was lost or refused",
                listener.losses)
    out.counter("loaphuong_feed_reloads_total",
                "full cache reloads (cut off longer than the change log keeps)",
                f.stats["reload_all"])


async def render_metrics(sv: Services) -> str:
    out = Exposition()
    await _database(out, sv)
    _airing(out, sv)
    _queues(out, sv)
    _broker(out, sv)
    _feed(out, sv)
    return out.render()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, sv: ServicesDep) -> Response:
    """The Prometheus text exposition (access: see the module docstring)."""
    token = sv.settings.metrics.token
    refused = refusal(request, token.get_secret_value() if token is not None else None)
    if refused is not None:
        return refused
    return Response(await render_metrics(sv), media_type=CONTENT_TYPE)
