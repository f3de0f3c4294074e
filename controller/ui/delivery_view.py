"""Server-sent events for the delivery view: the current state at connect, then one event per change.

The delivery service wakes the open streams of a broadcast on every change
(controller/airing/delivery_events.py, built with the services). Changes are coalesced (≤ 4
events a second per stream). When nothing changed for :data:`KEEPALIVE_S` the stream sends a
``: keep-alive`` comment (so proxies and phones keep the connection, and a client sees that the
stream lives), and the state again if it changed meanwhile without a wake-up (a unit going
offline changes the summary, not a delivery). A slow database delays an event, never the
keep-alive. docs/airing.md, *What staff see*.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from controller.airing.models import FINAL_STATES, Broadcast, BroadcastStatus, Delivery
from controller.airing.summary import DeliveryRow, online_from, summarize
from controller.api.deps import ServicesDep, UserDep
from controller.api.responses import COMMON_ERRORS, errors, iso
from controller.api.scope import broadcast_for
from controller.services import Services
from controller.ui.bc_reasons import said
from devices import protocol as p

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/broadcasts", tags=["broadcasts"])

FINAL = {st.value for st in FINAL_STATES}
PROGRESS = {"queued": 0, "offline": 5, "sent": 20, "receiving": 40, "verified": 60, "playing": 80}
KEEPALIVE_S = 15.0  # at most this long without a byte on the stream
REREAD_S = 2.0  # the change feed is not listening: another controller's changes are read this often
FLUSH_WAIT_S = 2.0  # how long an event waits for the batched writes before reading the rows
KEEPALIVE = b": keep-alive\n\n"
_DONE = {BroadcastStatus.DONE.value, BroadcastStatus.EXPIRED.value, BroadcastStatus.CANCELLED.value,
         BroadcastStatus.FAILED.value}


def snapshot(sv: Services, broadcast_id: str) -> dict[str, Any]:
    with sv.db.session() as s:
        bc = s.get(Broadcast, broadcast_id)
        rows = s.exec(select(Delivery).where(Delivery.broadcast_id == broadcast_id)
                      .order_by(col(Delivery.node_id))).all()
    tally: dict[str, int] = {}
    units = []
    for d in rows:
        tally[d.state] = tally.get(d.state, 0) + 1
        final = d.state in FINAL
        units.append({"node_id": d.node_id, "state": d.state, "reason": d.reason,
                      "progress": 100 if final else PROGRESS.get(d.state, 0)})
    out: dict[str, Any] = {"id": broadcast_id, "status": bc.status if bc else "",
                           "reason": bc.reason if bc else "", "tally": tally, "deliveries": units,
                           "reason_vi": said("vi", bc.reason) if bc else "",
                           "reason_en": said("en", bc.reason) if bc else "",
                           "final": bool(bc and bc.status in _DONE)}
    if bc is not None:
        sm = summarize(bc, [DeliveryRow(d.node_id, d.state, d.reason) for d in rows],
                       online_from(sv.presence.status), p.now_ms())
        out["summary"] = {"state": sm.state, "groups": sm.groups, "waiting_until": iso(sm.waiting_until),
                          "waiting_nodes": sm.waiting_nodes, "text_vi": sm.text_vi, "text_en": sm.text_en}
    return out


async def _fresh(sv: Services, broadcast_id: str) -> str:
    """The snapshot as JSON, after the writes submitted so far (waited for at most FLUSH_WAIT_S)."""
    try:
        await asyncio.wait_for(asyncio.shield(sv.writer.flush()), timeout=FLUSH_WAIT_S)
    except TimeoutError:
        pass  # the rows as they are; the next event brings the rest
    snap = await asyncio.to_thread(snapshot, sv, broadcast_id)
    return json.dumps(snap, ensure_ascii=False)


def _quiet_s(sv: Services, sent: float) -> float:
    """How long to wait for a wake-up: until the keep-alive is due, or REREAD_S while the change
    feed is not listening (a change made by another controller would wake nobody)."""
    due = max(0.01, KEEPALIVE_S - (time.monotonic() - sent))
    return due if sv.feed.live() else min(due, REREAD_S)


@router.get("/{broadcast_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}, **errors(*COMMON_ERRORS, 404)})
async def delivery_events(broadcast_id: str, request: Request, sv: ServicesDep,
                          user: UserDep) -> StreamingResponse:
    """``text/event-stream``: a ``delivery`` event with the per-unit states, the tally and the
    summary at once and on every change, a ``: keep-alive`` comment after 15 s without one, until
    the broadcast is finished (then one last event and the stream ends)."""
    with sv.db.session() as s:
        broadcast_for(s, user, broadcast_id)  # 404 / 403
    streams = sv.delivery_streams

    async def stream() -> AsyncIterator[bytes]:
        ev = streams.open(broadcast_id)
        last, sent = "", time.monotonic()
        try:
            yield b"retry: 2000\n\n"
            while True:
                ev.clear()  # before reading: a change while we read wakes us again
                task = asyncio.ensure_future(_fresh(sv, broadcast_id))
                try:
                    while not (await asyncio.wait({task}, timeout=KEEPALIVE_S))[0]:
                        yield KEEPALIVE  # the database is slow: the stream still lives
                        sent = time.monotonic()
                    body = task.result()
                except SQLAlchemyError as exc:  # the database is down: keep the stream, read again later
                    logger.warning("delivery stream of %s: cannot read the state now (%s)", broadcast_id, exc)
                    body = last
                finally:
                    task.cancel()
                if body != last:
                    yield f"event: delivery\ndata: {body}\n\n".encode()
                    last, sent = body, time.monotonic()
                if (body and json.loads(body)["final"]) or await request.is_disconnected():
                    return
                try:
                    await asyncio.wait_for(ev.wait(), timeout=_quiet_s(sv, sent))
                    await asyncio.sleep(0.25)  # coalesce a burst of changes
                except TimeoutError:
                    if time.monotonic() - sent >= KEEPALIVE_S * 0.99:
                        yield KEEPALIVE
                        sent = time.monotonic()
        finally:
            streams.close(broadcast_id, ev)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
