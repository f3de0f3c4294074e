"""Server-sent events for the delivery view: one event per change of a broadcast's deliveries.

The delivery service wakes the open streams of a broadcast on every change
(controller/airing/delivery_events.py, built with the services). Changes are coalesced (≤ 4
events a second per stream) and a snapshot is sent at least every 10 s, so a stream that missed
something catches up by itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlmodel import col, select

from controller.airing.models import FINAL_STATES, Broadcast, BroadcastStatus, Delivery
from controller.api.deps import ServicesDep, UserDep
from controller.api.responses import COMMON_ERRORS, errors
from controller.api.scope import broadcast_for
from controller.services import Services

router = APIRouter(prefix="/api/broadcasts", tags=["broadcasts"])

FINAL = {st.value for st in FINAL_STATES}
PROGRESS = {"queued": 0, "offline": 5, "sent": 20, "receiving": 40, "verified": 60, "playing": 80}
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
    return {"id": broadcast_id, "status": bc.status if bc else "", "reason": bc.reason if bc else "",
            "tally": tally, "deliveries": units, "final": bool(bc and bc.status in _DONE)}


@router.get("/{broadcast_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}, **errors(*COMMON_ERRORS, 404)})
async def delivery_events(broadcast_id: str, request: Request, sv: ServicesDep,
                          user: UserDep) -> StreamingResponse:
    """``text/event-stream``: a ``delivery`` event with the per-unit states and the tally on every
    change, until the broadcast is finished (then one last event and the stream ends)."""
    with sv.db.session() as s:
        broadcast_for(s, user, broadcast_id)  # 404 / 403
    streams = sv.delivery_streams

    async def stream() -> AsyncIterator[bytes]:
        ev = streams.open(broadcast_id)
        try:
            yield b"retry: 2000\n\n"
            while True:
                await sv.writer.flush()
                snap = await asyncio.to_thread(snapshot, sv, broadcast_id)
                yield f"event: delivery\ndata: {json.dumps(snap, ensure_ascii=False)}\n\n".encode()
                if snap["final"] or await request.is_disconnected():
                    return
                ev.clear()
                try:
                    await asyncio.wait_for(ev.wait(), timeout=10)
                except TimeoutError:
                    pass
                await asyncio.sleep(0.25)
        finally:
            streams.close(broadcast_id, ev)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
