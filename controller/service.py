"""Orchestration behind the API: bulletins → audio → broadcasts → scheduler → delivery.

Routes call these functions; they raise ``ServiceError`` (with an HTTP status and a
message a ward officer can act on) for anything the user got wrong.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, col, select

import tts
from controller.airing import airing_refusal
from controller.binding import audio_refusal
from controller.dictionary import load_dictionary
from controller.models import (
    RETIRED,
    AudioAsset,
    Broadcast,
    BroadcastStatus,
    Bulletin,
    BulletinSpeech,
    Delivery,
    DeliveryEvent,
    DeliveryState,
    Node,
    NodeZone,
    Zone,
)
from devices import protocol as p

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------- bulletins


def store_audio(s: Session, audio_dir: Path, *, data: bytes, sha256: str, codec: str, duration_ms: int,
                sample_rate: int, bitrate_kbps: int, engine: str, voice: str) -> None:
    """Write audio content-addressed under ``audio_dir`` (atomically) and add its AudioAsset row,
    unless the same audio is already stored."""
    if s.get(AudioAsset, sha256) is not None:
        return
    rel = Path(sha256[:2]) / f"{sha256}.{codec}"
    dest = audio_dir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)
    s.add(AudioAsset(sha256=sha256, size=len(data), duration_ms=duration_ms, codec=codec,
                     sample_rate=sample_rate, bitrate_kbps=bitrate_kbps, engine=engine, voice=voice,
                     path=str(rel)))


def render_bulletin(s: Session, *, title: str, text: str, voice: str, priority: str, engine: str,
                    bitrate_kbps: int, audio_dir: Path, cache_dir: Path | None,
                    created_by: str, fallback: Sequence[str] = (), speed: float = 1.0,
                    codec: str = "mp3", audio: tts.AudioOptions | None = None,
                    cache_max_bytes: int | None = None, org_unit_id: str | None = None,
                    prepare: Callable[[Bulletin], None] | None = None) -> Bulletin:
    """Normalise and synthesise the text (falling back to other engines when needed) with the
    dictionary of ``org_unit_id``, and store the bulletin with its audio, its spoken form and its
    warnings (blocking; run in a thread). ``prepare`` sets its approval state before it is first
    written (so an editor's bulletin is never stored as approved, not even for a moment)."""
    extra = {} if cache_max_bytes is None else {"cache_max_bytes": cache_max_bytes}
    try:
        rendered = tts.render(text, voice=voice, engine=engine, bitrate_kbps=bitrate_kbps,
                              cache_dir=cache_dir, fallback=fallback, speed=speed, codec=codec,
                              audio=audio, dictionary=load_dictionary(s, org_unit_id), **extra)
    except (tts.EmptyTextError, tts.TextTooLongError, tts.UnknownVoiceError, tts.InvalidOptionError,
            tts.SilentSpeechError) as exc:
        raise ServiceError(422, str(exc)) from None
    except tts.TTSError as exc:
        logger.error("speech synthesis failed: %s", exc)
        raise ServiceError(503, f"speech synthesis failed: {exc}") from None
    for warning in rendered.warnings:
        logger.warning("bulletin speech: %s", warning)
    store_audio(s, audio_dir, data=rendered.data, sha256=rendered.sha256, codec=rendered.codec,
                duration_ms=rendered.duration_ms, sample_rate=rendered.sample_rate,
                bitrate_kbps=rendered.bitrate_kbps, engine=rendered.engine, voice=rendered.voice)
    bulletin = Bulletin(title=title, text=text, voice=voice, priority=priority,
                        audio_sha256=rendered.sha256, created_by=created_by,
                        warnings=list(rendered.warnings), org_unit_id=org_unit_id)
    if prepare is not None:
        prepare(bulletin)
    s.add(bulletin)
    s.flush()
    assert bulletin.id is not None
    s.add(BulletinSpeech(bulletin_id=bulletin.id, spoken_text=rendered.text, engine=rendered.engine,
                         requested_engine=rendered.requested_engine or engine, voice=rendered.voice,
                         dictionary_hits=list(rendered.dictionary_hits), speed=speed))
    s.flush()
    if bulletin.approval == "approved":  # approved by its author: bound to this audio and reading
        bulletin.approved_sha256, bulletin.approved_spoken_text = rendered.sha256, rendered.text
    s.commit()
    s.refresh(bulletin)
    return bulletin


# ---------------------------------------------------------------------- targets


@dataclass
class Resolved:
    nodes: list[str]
    scopes: list[p.AudioScope]


def resolve_targets(s: Session, *, all_nodes: bool, zones: list[str], nodes: list[str]) -> Resolved:
    """Turn a target (whole ward / zones / single nodes) into node ids and the fewest scopes."""
    if all_nodes:
        ids = sorted(s.exec(select(Node.id).where(col(Node.status) != RETIRED)).all())
        if not ids:
            raise ServiceError(422, "the ward has no loudspeaker units yet")
        return Resolved(nodes=ids, scopes=[p.AudioScope(kind="group", id="all")])
    if not zones and not nodes:
        raise ServiceError(422, "choose the whole ward, at least one zone, or at least one unit")
    known_zones = set(s.exec(select(Zone.id).where(col(Zone.id).in_(zones))).all())
    unknown = [z for z in zones if z not in known_zones]
    if unknown:
        raise ServiceError(404, f"unknown zone(s): {', '.join(unknown)}")
    in_service = select(Node.id).where(col(Node.id).in_(nodes), col(Node.status) != RETIRED)  # not retired
    known_nodes = set(s.exec(in_service).all())
    missing = [n for n in nodes if n not in known_nodes]
    if missing:
        raise ServiceError(404, f"unknown unit(s): {', '.join(missing)}")
    covered: set[str] = set()
    scopes: list[p.AudioScope] = []
    for z in dict.fromkeys(zones):
        members = s.exec(select(NodeZone.node_id).where(NodeZone.zone_id == z)).all()
        if members:
            covered.update(members)
            scopes.append(p.AudioScope(kind="group", id=z))
    for n in dict.fromkeys(nodes):
        if n not in covered:
            covered.add(n)
            scopes.append(p.AudioScope(kind="node", id=n))
    if not covered:
        raise ServiceError(422, "the chosen zones have no loudspeaker units")
    return Resolved(nodes=sorted(covered), scopes=scopes)


# ---------------------------------------------------------------------- broadcasts


def new_broadcast_id() -> str:
    stamp = datetime.now(tz=UTC).strftime("%Y%m%d-%H%M%S")
    return f"b-{stamp}-{secrets.token_hex(2)}"


def create_broadcast(s: Session, *, bulletin_id: int, all_nodes: bool, zones: list[str], nodes: list[str],
                     priority: str | None, air_at: int | None, valid_s: int, repeat: int,
                     created_by: str, play_at: int | None = None) -> Broadcast:
    bulletin = s.get(Bulletin, bulletin_id)
    if bulletin is None:
        raise ServiceError(404, f"bulletin {bulletin_id} does not exist")
    if (why := airing_refusal(bulletin, priority)) is not None:  # every broadcast, API or schedule
        raise ServiceError(409, why)
    if bulletin.audio_sha256 is None:
        raise ServiceError(409, f"bulletin {bulletin_id} has no audio")
    unbound = audio_refusal(bulletin, bulletin.audio_sha256)
    if unbound is not None:
        raise ServiceError(409, unbound)
    now = p.now_ms()
    start = now if air_at is None else air_at
    if start < now - 60_000:
        raise ServiceError(422, "the air time is in the past")
    target = resolve_targets(s, all_nodes=all_nodes, zones=zones, nodes=nodes)
    bc = Broadcast(
        id=new_broadcast_id(), bulletin_id=bulletin_id, audio_sha256=bulletin.audio_sha256,
        priority=priority or bulletin.priority, status=BroadcastStatus.SCHEDULED.value,
        targets={"all": all_nodes, "zones": zones, "nodes": nodes},
        scopes=[sc.model_dump() for sc in target.scopes], repeat=repeat, air_at=start,
        expires_at=max(start, play_at or start) + valid_s * 1000, created_by=created_by, play_at=play_at,
    )
    s.add(bc)
    s.flush()
    for node_id in target.nodes:
        d = Delivery(broadcast_id=bc.id, node_id=node_id, state=DeliveryState.QUEUED.value, updated_at=now)
        s.add(d)
        s.flush()
        assert d.id is not None
        s.add(DeliveryEvent(delivery_id=d.id, state=DeliveryState.QUEUED.value, at=now))
    s.commit()
    s.refresh(bc)
    logger.info("broadcast %s of bulletin %d for %d node(s) in %d scope(s), airs at %d",
                bc.id, bulletin_id, len(target.nodes), len(target.scopes), start)
    return bc


def mark_missed(s: Session, broadcast_id: str, reason: str) -> None:
    bc = s.get(Broadcast, broadcast_id)
    if bc is None or bc.status != BroadcastStatus.SCHEDULED.value:
        return
    bc.status, bc.reason = BroadcastStatus.FAILED.value, reason[:500]
    s.add(bc)
    for d in s.exec(select(Delivery).where(Delivery.broadcast_id == broadcast_id)).all():
        d.state, d.reason, d.updated_at = DeliveryState.FAILED.value, "broadcast missed its slot", p.now_ms()
        s.add(d)
        assert d.id is not None
        s.add(DeliveryEvent(delivery_id=d.id, state=d.state, reason=d.reason, at=d.updated_at))
    s.commit()
