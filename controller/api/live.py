"""Live broadcast over a WebSocket (``/api/live/ws``), used by ``/live.html``.

Client → controller: first a JSON text message
``{"type": "start", "target": {"zones": [...], "nodes": [...], "all": false}, "priority": "normal"}``,
then binary messages of PCM s16le, 16 kHz, mono (any length; 20–60 ms is typical), and
``{"type": "stop"}`` to end. Controller → client: JSON ``{"type": "state", "state":
"waiting"|"live"|"ended", "reason", "session", ...}``, ``{"type": "units", "live": [...],
"level_dbfs"}`` twice a second while live, and ``{"type": "error", "detail"}`` before closing.
Closing the socket (or losing it) ends the session on every unit.

Login: the session cookie of the web app, or HTTP Basic on the upgrade request (scripts,
bench). A cookie login is accepted only from a page of the same origin.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.accounts import CAN_AIR, COOKIE, find_session
from controller.api.schemas import Priority
from controller.api.scope import scoped_target
from controller.app import Services
from controller.live import LiveHub
from controller.models import User
from controller.service import ServiceError, resolve_targets
from devices import protocol as p

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/live", tags=["live"])

START_TIMEOUT_S = 15.0


class LiveTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: bool = False
    zones: list[str] = Field(default_factory=list)
    nodes: list[str] = Field(default_factory=list)


class LiveStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["start"]
    target: LiveTarget
    priority: Priority = "normal"


def hub(ws: WebSocket) -> LiveHub:
    state = ws.app.state
    if getattr(state, "live_hub", None) is None:
        sv: Services = state.services
        state.live_hub = LiveHub(sv.link, sv.air, sv.presence)
    h: LiveHub = state.live_hub
    return h


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == ws.headers.get("host", "")


def authenticate(ws: WebSocket, sv: Services) -> User | None:
    with sv.db.session() as s:
        auth = ws.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return sv.verifier.check(s, name, password)
        token = ws.cookies.get(COOKIE)
        if token is not None and _same_origin(ws):
            found = find_session(s, token)
            return found[0] if found else None
    return None


async def _refuse(ws: WebSocket, detail: str, code: int = 1008) -> None:
    await ws.send_json({"type": "error", "detail": detail})
    await ws.close(code=code)


@router.websocket("/ws")
async def live_ws(ws: WebSocket) -> None:
    sv: Services = ws.app.state.services
    user = await asyncio.to_thread(authenticate, ws, sv)
    await ws.accept()
    if user is None:
        await _refuse(ws, "login required (wrong user name or password)")
        return
    if user.role not in CAN_AIR:
        await _refuse(ws, f"your role ({user.role}) may not air broadcasts")
        return
    try:
        first = await asyncio.wait_for(ws.receive_text(), START_TIMEOUT_S)
        req = LiveStart.model_validate(json.loads(first))
    except (TimeoutError, json.JSONDecodeError, ValidationError, KeyError, TypeError) as exc:
        await _refuse(ws, f"send {{'type': 'start', 'target': {{...}}}} first ({type(exc).__name__})")
        return
    except WebSocketDisconnect:
        return

    def resolve() -> tuple[list[str], list[p.AudioScope]]:
        with sv.db.session() as s:  # a ward user reaches only the zones of the ward
            all_nodes, zones, ids = scoped_target(s, user, req.target.all, req.target.zones, req.target.nodes)
            r = resolve_targets(s, all_nodes=all_nodes, zones=zones, nodes=ids)
            return r.nodes, r.scopes

    try:
        nodes, scopes = await asyncio.to_thread(resolve)
    except ServiceError as exc:
        await _refuse(ws, exc.message)
        return
    except HTTPException as exc:
        await _refuse(ws, str(exc.detail))
        return
    priority = p.Priority(req.priority)
    if priority != p.Priority.EMERGENCY and sv.air.emergency_on(nodes):
        await _refuse(ws, "an emergency is on air in these zones; live broadcast refused "
                          "(try again after it)")
        return

    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=256)

    def notify(msg: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            outbox.put_nowait(msg)

    h = hub(ws)
    session = h.open(user=user.username, priority=priority, nodes=nodes, scopes=scopes, notify=notify)
    sender = asyncio.create_task(_send_loop(ws, outbox), name=f"live-send-{session.id}")
    reason = "stopped"
    try:
        while session.state != "ended":
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                reason = "disconnected"
                break
            if msg.get("bytes") is not None:
                h.feed(session, msg["bytes"])
            elif msg.get("text") is not None and _is_stop(msg["text"]):
                break
    except WebSocketDisconnect:
        reason = "disconnected"
    finally:
        h.end(session, reason)
        await asyncio.sleep(0)  # let the final state reach the outbox
        notify({"type": "closed"})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sender, 2.0)
        sender.cancel()
        with contextlib.suppress(Exception):
            await ws.close()


def _is_stop(text: str) -> bool:
    try:
        return bool(json.loads(text).get("type") == "stop")
    except (json.JSONDecodeError, AttributeError):
        return False


async def _send_loop(ws: WebSocket, outbox: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        msg = await outbox.get()
        if msg.get("type") == "closed":
            return
        try:
            await ws.send_json(msg)
            if msg.get("state") == "ended":  # ended here (pre-empted, silent...): hang up
                await ws.close(code=1000, reason=str(msg.get("reason", ""))[:100])
                return
        except Exception:  # the phone went away; the reader ends the session  # noqa: BLE001
            return
