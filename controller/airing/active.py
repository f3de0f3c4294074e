"""The broadcasts being delivered, in memory: each unit's state, and how one is rebuilt from the database.

Delivery (controller/airing/delivery.py) keeps one :class:`ActiveBroadcast` per broadcast still
on its way (its chunks, scopes and per-unit state, docs/protocol.md §4); this module builds one
from its ``broadcast`` row, its audio file and its ``delivery`` rows (at air time, and after a
controller restart), and says why a broadcast waiting to air may no longer air.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, col, func, select

from controller.airing.models import Broadcast, BroadcastStatus, Delivery, DeliveryEvent, DeliveryState
from controller.airing.rules import airing_refusal, bypass_refusal, is_bypass
from controller.bulletins.binding import audio_refusal
from controller.bulletins.models import AudioAsset, Bulletin
from devices import protocol as p

S = DeliveryState
ACK_TO_STATE = {
    p.AckState.RECEIVING: S.RECEIVING,
    p.AckState.VERIFIED: S.VERIFIED,
    p.AckState.PLAYING: S.PLAYING,
    p.AckState.PLAYED: S.PLAYED,
    p.AckState.FAILED: S.FAILED,
}
EXPIRY_REASON = {
    S.QUEUED: "never sent",
    S.OFFLINE: "node offline until expiry",
    S.SENT: "no answer from node before expiry",
    S.RECEIVING: "audio incomplete at expiry",
    S.VERIFIED: "not played before expiry",
    S.PLAYING: "end of playback not confirmed",
}


@dataclass
class NodeDelivery:
    delivery_id: int
    state: DeliveryState
    reason: str = ""
    changed: float = field(default_factory=time.monotonic)
    resends: int = 0
    repaired_chunks: int = 0
    #: reconcile (controller/airing/reconcile.py): times this unit was asked again, and when next
    asks: int = 0
    next_ask_ms: int = 0


@dataclass
class ActiveBroadcast:
    id: str
    manifest: p.Manifest
    frames: list[bytes]
    scopes: list[p.AudioScope]
    nodes: dict[str, NodeDelivery]
    published: bool = False
    #: when its first unit reported ``playing`` (restored from the database: a restarted controller
    #: lets the units that have not started join in step)
    started_at_ms: int | None = None

    @property
    def expires_at(self) -> int:
        return self.manifest.expires_at

    @property
    def duration_ms(self) -> int:
        """How long it sounds: the audio times its repeats."""
        return self.manifest.audio.duration_ms * self.manifest.repeat

    _rest: list[NodeDelivery] | None = field(default=None, repr=False)  # not yet seen final

    def done(self) -> bool:
        """Every unit is final. Asked at every ack: a final state is never left, so the units seen
        final are dropped from ``_rest`` (O(units) over the broadcast, not O(units) each time)."""
        rest = self._rest if self._rest is not None else list(self.nodes.values())
        while rest and rest[-1].state.final:
            rest.pop()
        self._rest = rest
        return not rest


def on_the_way(s: Session) -> list[Broadcast]:
    """Broadcasts being sent or on air (to rebuild after a restart)."""
    wanted = [BroadcastStatus.SENDING.value, BroadcastStatus.ACTIVE.value]
    return list(s.exec(select(Broadcast).where(col(Broadcast.status).in_(wanted))).all())


def load_active(s: Session, bc: Broadcast, audio_dir: Path, chunk_size: int) -> ActiveBroadcast:
    """The in-memory broadcast of row ``bc``: its audio chunked again (its checksum checked)."""
    asset = s.get(AudioAsset, bc.audio_sha256)
    if asset is None:
        raise ValueError(f"audio {bc.audio_sha256} missing")
    audio = (audio_dir / asset.path).read_bytes()
    info, frames = p.chunk_audio(
        audio, duration_ms=asset.duration_ms, chunk_size=chunk_size,
        codec="opus" if asset.codec == "opus" else "mp3", sample_rate=asset.sample_rate,
        bitrate_kbps=asset.bitrate_kbps,
    )
    if info.sha256 != asset.sha256:
        raise ValueError(f"audio file of {bc.id} does not match its checksum")
    bulletin = s.get(Bulletin, bc.bulletin_id)
    manifest = p.Manifest(
        bc=bc.id, title=(bulletin.title if bulletin else "")[:200], priority=p.Priority(bc.priority),
        audio=info, play_at=getattr(bc, "play_at", None), expires_at=bc.expires_at, repeat=bc.repeat,
        hold=True,
    )
    # columns, not ORM rows: an emergency to 1,000 units loads them on its way to the wire
    rows = s.exec(select(Delivery.id, Delivery.node_id, Delivery.state, Delivery.reason)
                  .where(Delivery.broadcast_id == bc.id)).all()
    nodes = {node_id: NodeDelivery(delivery_id=did or 0, state=S(state), reason=reason)
             for did, node_id, state, reason in rows}
    scopes = [p.AudioScope.model_validate(sc) for sc in bc.scopes]
    first_playing = s.exec(select(func.min(DeliveryEvent.at)).join(  # type: ignore[arg-type]
        Delivery, col(Delivery.id) == col(DeliveryEvent.delivery_id)).where(
        Delivery.broadcast_id == bc.id, DeliveryEvent.state == S.PLAYING.value)).one()
    return ActiveBroadcast(id=bc.id, manifest=manifest, frames=frames, scopes=scopes, nodes=nodes,
                           started_at_ms=first_playing)


def refusal(s: Session, broadcast_id: str) -> str | None:
    """Why a broadcast waiting to air may no longer air (its bulletin rejected, or its audio not
    the audio that was approved: controller/bulletins/binding.py), else None."""
    bc = s.get(Broadcast, broadcast_id)
    if bc is None or bc.status != BroadcastStatus.SCHEDULED.value:
        return None  # the claim in DeliveryService.air decides
    b = s.get(Bulletin, bc.bulletin_id)
    if b is None:
        return "its bulletin no longer exists"
    why = airing_refusal(b, bc.priority) or audio_refusal(b, bc.audio_sha256)
    if why is None and is_bypass(b, bc.priority) and not bc.created_by.startswith("schedule "):
        why = bypass_refusal(s, bc.created_by, b)  # (a schedule's creator is checked when it fires)
    return why
