"""Live broadcast over a WebSocket (``/api/live/ws``), used by ``/live.html``.

Client → controller: first a JSON text message
``{"type": "start", "target": {"zones": [...], "nodes": [...], "all": false}, "priority": "normal"}``,
then binary messages of PCM s16le, 16 kHz, mono (any length; 20–60 ms is typical), and
``{"type": "stop"}`` to end. Controller → client: JSON ``{"type": "state", "state":
"waiting"|"live"|"ended", "reason", "session", ...}``, ``{"type": "units", "live": [...],
"level_dbfs"}`` twice a second while live, and ``{"type": "error", "detail"}`` before closing.
Closing the socket (or losing it) ends the session on every unit.

Login (controller/api/live_auth.py): a page of another origin is refused at the handshake; a
browser logs in with the session cookie and sends the session's CSRF token (``GET
/api/live/token``) as ``"csrf"`` in its start message; HTTP Basic on the upgrade request only
from clients that send no ``Origin`` (scripts, bench).

The record of phone sessions (controller/live/log.py): ``GET /api/live/sessions`` (newest first),
``GET /api/live/sessions/{id}`` and ``GET /api/live/sessions/{id}/audio`` (the archived MP3).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket, WebSocketDisconnect, status
from fastapi.responses import FileResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from controller.accounts.models import User
from controller.accounts.roles import CAN_AIR
from controller.accounts.scope import visible_zones
from controller.api.deps import ServicesDep, SessionDep, UserDep
from controller.api.live_auth import WsLogin, authenticate, origin_allowed, session_csrf, token_ok
from controller.api.responses import LiveToken
from controller.api.schemas import LiveStart
from controller.api.scope import forbidden, scoped_target
from controller.core.errors import ServiceError
from controller.fleet.models import NodeZone
from controller.fleet.targets import resolve_targets
from controller.live.hub import LiveHub
from controller.live.models import LiveLog
from controller.live.session import LiveSession
from controller.services import Services
from devices import protocol as p
from scheduler import TIMEZONE

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/live", tags=["live"])

START_TIMEOUT_S = 15.0
SERVER_GOING_AWAY = 1012  # uvicorn closes the sockets with "service restart" when it stops


@router.get("/token", response_model=LiveToken)
def live_token(request: Request, sv: ServicesDep, _: UserDep, response: Response) -> LiveToken:
    """The token ``/live.html`` sends in its start message (the session's CSRF token)."""
    response.headers["Cache-Control"] = "no-store"
    return LiveToken(csrf_token=session_csrf(request, sv))


async def _refuse(ws: WebSocket, detail: str, code: int = 1008) -> None:
    await ws.send_json({"type": "error", "detail": detail})
    await ws.close(code=code)


@router.websocket("/ws")
async def live_ws(ws: WebSocket, sv: ServicesDep) -> None:
    """One live session: admit the socket, read its start message, resolve the units, then relay
    the audio until the phone stops or goes away."""
    login = await _admit(ws, sv)
    if login is None:
        return
    req = await _start_message(ws, login)
    if req is None:
        return
    picked = await _units(ws, sv, login.user, req)
    if picked is None:
        return
    await _run(ws, sv.live_hub, login.user, req, picked)


async def _admit(ws: WebSocket, sv: Services) -> WsLogin | None:
    """The handshake: another site's page is refused before accept; then the login and the role."""
    if not origin_allowed(ws.headers, sv.settings.live.allowed_origins):
        logger.warning("live socket from origin %r refused (not this controller's)", ws.headers.get("origin"))
        await ws.close(code=1008)  # before accept: the handshake is answered 403
        return None
    try:
        login = await asyncio.to_thread(authenticate, ws, sv)
    except HTTPException as exc:  # too many failed logins: wait (the login backoff)
        await ws.accept()
        await _refuse(ws, str(exc.detail))
        return None
    await ws.accept()
    if login is None:
        await _refuse(ws, "login required (wrong user name or password; a browser logs in on the login page)")
        return None
    if login.user.role not in CAN_AIR:
        await _refuse(ws, f"your role ({login.user.role}) may not air broadcasts")
        return None
    return login


async def _start_message(ws: WebSocket, login: WsLogin) -> LiveStart | None:
    """The first message, ``{"type": "start", ...}``, with the session's CSRF token for a cookie login."""
    try:
        first = await asyncio.wait_for(ws.receive_text(), START_TIMEOUT_S)
        req = LiveStart.model_validate(json.loads(first))
    except (TimeoutError, json.JSONDecodeError, ValidationError, KeyError, TypeError) as exc:
        await _refuse(ws, f"send {{'type': 'start', 'target': {{...}}}} first ({type(exc).__name__})")
        return None
    except WebSocketDisconnect:
        return None
    if not token_ok(login, req.csrf):
        await _refuse(ws, "missing or wrong CSRF token (reload the page)")
        return None
    return req


async def _units(ws: WebSocket, sv: Services, user: User,
                 req: LiveStart) -> tuple[list[str], list[p.AudioScope]] | None:
    """The units and audio scopes of the target (a ward user: only the ward's), unless refused."""
    def resolve() -> tuple[list[str], list[p.AudioScope]]:
        with sv.db.session() as s:  # a ward user reaches only the zones of the ward
            all_nodes, zones, ids = scoped_target(s, user, req.target.all, req.target.zones, req.target.nodes)
            r = resolve_targets(s, all_nodes=all_nodes, zones=zones, nodes=ids)
            return r.nodes, r.scopes

    try:
        nodes, scopes = await asyncio.to_thread(resolve)
    except ServiceError as exc:
        await _refuse(ws, exc.message)
        return None
    except HTTPException as exc:
        await _refuse(ws, str(exc.detail))
        return None
    if p.Priority(req.priority) != p.Priority.EMERGENCY and sv.air.emergency_on(nodes):
        await _refuse(ws, "an emergency is on air in these zones; live broadcast refused "
                          "(try again after it)")
        return None
    return nodes, scopes


async def _run(ws: WebSocket, h: LiveHub, user: User, req: LiveStart,
               picked: tuple[list[str], list[p.AudioScope]]) -> None:
    """Open the session, feed it the phone's audio until stop / disconnect, then end it."""
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=256)

    def notify(msg: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            outbox.put_nowait(msg)

    nodes, scopes = picked
    session = h.open(user=user.username, priority=p.Priority(req.priority), nodes=nodes, scopes=scopes,
                     notify=notify, target=req.target.model_dump())
    sender = asyncio.create_task(_send_loop(ws, outbox), name=f"live-send-{session.id}")
    reason = "stopped"
    try:
        reason = await _receive_loop(ws, h, session)
    finally:
        h.end(session, reason)
        await asyncio.sleep(0)  # let the final state reach the outbox
        notify({"type": "closed"})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sender, 2.0)
        sender.cancel()
        with contextlib.suppress(Exception):
            await ws.close()


async def _receive_loop(ws: WebSocket, h: LiveHub, session: LiveSession) -> str:
    """Feed the audio frames; returns why the session ends (stopped, disconnected, shutdown)."""
    try:
        while session.state != "ended":
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return "shutdown" if msg.get("code") == SERVER_GOING_AWAY else "disconnected"
            if msg.get("bytes") is not None:
                h.feed(session, msg["bytes"])
            elif msg.get("text") is not None and _is_stop(msg["text"]):
                break
    except WebSocketDisconnect as exc:
        return "shutdown" if exc.code == SERVER_GOING_AWAY else "disconnected"
    return "stopped"


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


# --------------------------------------------------------------------------- the record


def visible_node_ids(s: Session, user: User) -> set[str] | None:
    """The units a user may see (None: all). A ward user sees a session or relay only when all
    of its units are in the ward."""
    mine = visible_zones(s, user)
    if mine is None:
        return None
    return set(s.exec(select(NodeZone.node_id).where(col(NodeZone.zone_id).in_(mine))).all())


def all_visible(nodes: list[str], seen: set[str] | None) -> bool:
    return seen is None or (bool(nodes) and set(nodes) <= seen)


def day_ms(d: date | None, end: bool = False) -> int | None:
    """00:00 (or 24:00 with ``end``) of a local date, as epoch ms."""
    if d is None:
        return None
    at = datetime.combine(d + timedelta(days=1) if end else d, time(0), tzinfo=TIMEZONE)
    return int(at.timestamp() * 1000)


def session_rows(s: Session, user: User, since: date | None, until: date | None, who: str | None,
                 limit: int, offset: int = 0) -> list[LiveLog]:
    """Logged sessions the user may see, newest first."""
    q = select(LiveLog).order_by(col(LiveLog.opened_at).desc(), col(LiveLog.id).desc())
    if (lo := day_ms(since)) is not None:
        q = q.where(col(LiveLog.opened_at) >= lo)
    if (hi := day_ms(until, end=True)) is not None:
        q = q.where(col(LiveLog.opened_at) < hi)
    if who:
        q = q.where(LiveLog.user == who)
    seen = visible_node_ids(s, user)
    if seen is None:
        return list(s.exec(q.offset(offset).limit(limit)).all())
    rows = [r for r in s.exec(q.limit(100_000)).all() if all_visible(r.nodes, seen)]
    return rows[offset:offset + limit]


def public(row: LiveLog) -> dict[str, Any]:
    out = row.model_dump()
    out["duration_ms"] = (row.ended_at - row.started_at) if row.ended_at and row.started_at else None
    out["audio"] = f"/api/live/sessions/{row.id}/audio" if row.archive else None
    return out


def _row(s: Session, user: User, sid: str) -> LiveLog:
    row = s.get(LiveLog, sid)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no live session {sid!r}")
    if not all_visible(row.nodes, visible_node_ids(s, user)):
        raise forbidden(f"live session {sid}")
    return row


@router.get("/sessions")
def list_sessions(s: SessionDep, user: UserDep,
                  since: date | None = Query(None, alias="from", description="local date (Asia/Ho_Chi_Minh)"),
                  until: date | None = Query(None, alias="to", description="local date, inclusive"),
                  who: str | None = Query(None, alias="user", max_length=100, description="who spoke"),
                  limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=1_000_000),
                  ) -> dict[str, Any]:
    """The log of live sessions from a phone, newest first (a ward user: only the ward's)."""
    rows = session_rows(s, user, since, until, who, limit + 1, offset)
    more = len(rows) > limit
    return {"items": [public(r) for r in rows[:limit]], "next_offset": offset + limit if more else None}


@router.get("/sessions/{sid}")
def get_session(sid: str, s: SessionDep, user: UserDep) -> dict[str, Any]:
    return public(_row(s, user, sid))


@router.get("/sessions/{sid}/audio", response_class=FileResponse,
            responses={200: {"content": {"audio/mpeg": {}}}, 404: {"description": "not archived"}})
def session_audio(sid: str, sv: ServicesDep, s: SessionDep, user: UserDep) -> FileResponse:
    """The archived audio of a live session (MP3)."""
    row = _row(s, user, sid)
    path = sv.live_recorder.path(row)
    if path is None:
        why = row.archive_note or ("still being encoded" if row.state != "ended" else "not archived")
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"the audio of live session {sid} is not archived ({why})")
    return FileResponse(path, media_type="audio/mpeg", filename=f"{sid}.mp3")
