"""Server-sent events for the delivery view: one event per change of a broadcast's deliveries.

The delivery service calls ``fn(broadcast_id)`` on every change; one listener per app fans out
to the open streams. Changes are coalesced (≤ 4 events a second per stream) and a snapshot is
sent at least every 10 s, so a stream that missed something catches up by itself.
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
from controller.api.schemas import COMMON_ERRORS, errors
from controller.api.scope import broadcast_for
from controller.services import Services

router = APIRouter(prefix="/api/broadcasts", tags=["broadcasts"])

FINAL = {st.value for st in FINAL_STATES}
PROGRESS = {"queued": 0, "offline": 5, "sent": 20, "receiving": 40, "verified": 60, "playing": 80}
_DONE = {BroadcastStatus.DONE.value, BroadcastStatus.EXPIRED.value, BroadcastStatus.CANCELLED.value,
         BroadcastStatus.FAILED.value}


class Hub:
    def __init__(self) -> None:
        self.streams: dict[str, set[asyncio.Event]] = {}

    def changed(self, broadcast_id: str) -> None:
        for ev in self.streams.get(broadcast_id, ()):
            ev.set()


def hub(request: Request, sv: Services) -> Hub:
    state = request.app.state
    if getattr(state, "delivery_hub", None) is None:
        state.delivery_hub = Hub()
        sv.delivery.add_listener(state.delivery_hub.changed)
    h: Hub = state.delivery_hub
    return h


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
    h = hub(request, sv)

    async def stream() -> AsyncIterator[bytes]:
        ev = asyncio.Event()
        h.streams.setdefault(broadcast_id, set()).add(ev)
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
            h.streams.get(broadcast_id, set()).discard(ev)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
