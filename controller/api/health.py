"""Health: ``/api/livez`` (public: the process answers) and ``/api/health`` (login: is the
controller able to do its job right now, and what has it dropped).

The details name the broker, its errors and the counters: they are for staff and monitoring
with an account, not for anyone who can reach the port."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from controller.api.deps import ServicesDep, UserDep
from controller.api.responses import Liveness
from devices.mqtt import DUPLICATE_FLAPS

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/livez", response_model=Liveness)
def livez() -> Liveness:
    """Public liveness: answers ``{"status": "ok"}`` while the controller serves; nothing else."""
    return Liveness()


@router.get("/health")
def health(sv: ServicesDep, _: UserDep) -> dict[str, object]:
    """Readiness and counters (any logged-in user): ``status`` is ``ok`` when the database and
    the broker link work, else ``degraded``."""
    db_ok = True
    try:
        with sv.db.session() as s:
            s.exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception:  # noqa: BLE001 - reported, not raised
        db_ok = False
    link = sv.link.client
    return {
        "status": "ok" if db_ok and link.is_connected and not link.flaps >= DUPLICATE_FLAPS else "degraded",
        "ward": sv.settings.ward_name,
        "database": {"ok": db_ok, "pending_writes": sv.writer.backlog, "last_error": sv.writer.last_error},
        "mqtt": {"connected": link.is_connected, "broker": str(link.broker), "last_error": link.last_error,
                 "brokers": [str(b) for b in link.ring.brokers], "broker_moves": link.ring.moves,
                 "client_id": sv.link.client_id, "duplicate_client_id": link.flaps >= DUPLICATE_FLAPS,
                 # it stopped connecting: another client uses its configured id (docs/deploy.md)
                 "client_id_refused": link.ring.refused,
                 "rejected": dict(sv.link.rejected),
                 "rejected_by_node": dict(sv.link.rejected_by_node.most_common(50)),
                 "unknown_nodes": sv.presence.unknown_count(),
                 "bytes_out": link.stats.bytes_out, "msgs_in": link.stats.msgs_in},
        "feed": sv.feed.status(),  # how the other controllers' changes reach this one
        "active_broadcasts": sv.delivery.active_count(),
        "scheduled": len(sv.scheduler.pending()),
    }
