"""The broadcasts being delivered, in memory: each unit's state, and how one is rebuilt from the database.

Delivery (controller/airing/delivery.py) keeps one :class:`ActiveBroadcast` per broadcast still
on its way (its chunks, scopes and per-unit state, docs/protocol.md §4); this module builds one
from its ``broadcast`` row, its audio (the audio store) and its ``delivery`` rows (at air time, and after a
controller restart), and says why a broadcast waiting to air may no longer air.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlmodel import Session, col, func, select

from controller.airing.delivery_rows import delivery_states
from controller.airing.models import Broadcast, BroadcastStatus, Delivery, DeliveryEvent, DeliveryState
from controller.airing.rules import airing_refusal, bypass_refusal, is_bypass
from controller.bulletins.binding import audio_refusal
from controller.bulletins.models import AudioAsset, Bulletin
from controller.core.audiostore import AudioStore
from devices import protocol as p

S = DeliveryState
ACK_TO_STATE = {
    p.AckState.RECEIVING: S.RECEIVING,
    p.AckState.VERIFIED: S.VERIFIED,
    p.AckState.PLAYING: S.PLAYING,
    p.AckState.PLAYED: S.PLAYED,
    p.AckState.FAILED: S.FAILED,
}
#: The row's reason for what an emergency's ack says of the unit's attention tone (protocol §3).
ATTENTION = {p.TONE_SOUNDED: "attention tone sounded", p.TONE_MISSING: "no attention tone kept: speech only",
             p.TONE_MISMATCH: "attention tone failed its checksum: speech only"}
EXPIRY_REASON = {
    S.QUEUED: "never sent",
    S.OFFLINE: "node offline until expiry",
    S.SENT: "no answer from node before expiry",
    S.RECEIVING: "audio incomplete at expiry",
    S.VERIFIED: "not played before expiry",
    S.PLAYING: "end of playback not confirmed",
}


#: a unit's ``started_at`` earlier than this before its report is not believed (a clock gone wrong)
BEGAN_WITHIN_MS = 6 * 3600 * 1000


def began_at(ack: p.Ack, now_ms: int) -> int | None:
    """When a ``playing``/``played`` unit says it began sounding (the controller's clock), kept
    within [now − 6 h, now]; None if it does not say (older firmware: its report's arrival counts).
    A controller that learns of a start late (it took the broadcast over, or restarted, after its
    units had started on the previous owner's ``play``) records the start when it happened."""
    if ack.started_at is None or ack.state not in (p.AckState.PLAYING, p.AckState.PLAYED):
        return None
    return min(now_ms, ack.started_at) if ack.started_at >= now_ms - BEGAN_WITHIN_MS else None


@dataclass
class NodeDelivery:
    delivery_id: int
    state: DeliveryState
    reason: str = ""
    changed: float = field(default_factory=time.monotonic)
    resends: int = 0
    #: repair (controller/airing/repairs.py): chunks re-sent to it in the budget window begun at
    repaired_chunks: int = 0
    repair_window_at: float = 0.0
    #: its ``too_late`` answers turned into a catch-up (controller/airing/late.py)
    late: int = 0
    #: reconcile (controller/airing/reconcile.py): times this unit was asked again, and when next
    asks: int = 0
    next_ask_ms: int = 0
    #: offline when the broadcast was sent, or went off / came back / reconnected (a new birth) since:
    #: nothing of its sending can still be queued in the broker for it (controller/airing/repairs.py)
    rejoined: bool = False


@dataclass
class ActiveBroadcast:
    id: str
    manifest: p.Manifest
    frames: list[bytes]
    scopes: list[p.AudioScope]
    nodes: dict[str, NodeDelivery]
    published: bool = False
    #: when the broker acknowledged its last chunk (monotonic s; None before, or restored):
    #: chunks may still be queued in the broker for a while after (controller/airing/repairs.py)
    published_at: float | None = None
    #: when its first unit reported ``playing`` (restored from the database: a restarted controller
    #: lets the units that have not started join in step)
    started_at_ms: int | None = None
    #: rebuilt from the database after a controller restart or a takeover (controller/airing/takeover.py)
    restored: bool = False
    #: given up by this controller (controller/airing/custody.py): nothing more is sent of this object
    #: (a publish on its way stops at its next window); taken back, the broadcast is a new object
    gone: bool = False

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

    def rejoin_unfinished(self) -> None:
        """The controller's own broker link came back: what its unfinished units said meanwhile
        (verified acks, repair requests) may be lost, so each counts as rejoined (its repairs are
        not held as "maybe still queued", controller/airing/repairs.py) and its re-offers start
        anew — the sweep offers the manifest again to the silent ones."""
        for nd in self.nodes.values():
            if not nd.state.final:
                nd.rejoined, nd.resends = True, 0

    _ready: tuple[float, float] = field(default=(0.0, -1.0), repr=False)  # (share, when counted)

    def ready_share(self) -> float:
        """The share of its units that have verified it (or played it); counted at most every 0.25 s
        (asked at repair requests: O(units) a quarter second, not per request)."""
        share, at = self._ready
        now = time.monotonic()
        if now - at >= 0.25:
            rank = S.VERIFIED.rank
            ready = sum(1 for nd in self.nodes.values() if nd.state.rank >= rank and nd.state != S.FAILED)
            share = ready / len(self.nodes) if self.nodes else 1.0
            self._ready = (share, now)
        return share


def load_active(s: Session, bc: Broadcast, store: AudioStore, chunk_size: int) -> ActiveBroadcast:
    """The in-memory broadcast of row ``bc``: its audio, from the audio store (whichever controller
    rendered it; this one's cache first), chunked again (its checksum checked)."""
    asset = s.get(AudioAsset, bc.audio_sha256)
    if asset is None:
        raise ValueError(f"audio {bc.audio_sha256} missing")
    audio = store.get(asset.sha256)
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
    nodes = {node_id: NodeDelivery(delivery_id=did, state=S(state), reason=reason)
             for did, node_id, state, reason in delivery_states(s, bc.id)}
    scopes = [p.AudioScope.model_validate(sc) for sc in bc.scopes]
    first_playing = s.exec(select(func.min(DeliveryEvent.at)).join(  # type: ignore[arg-type]
        Delivery, col(Delivery.id) == col(DeliveryEvent.delivery_id)).where(
        Delivery.broadcast_id == bc.id, DeliveryEvent.state == S.PLAYING.value)).one()
    return ActiveBroadcast(id=bc.id, manifest=manifest, frames=frames, scopes=scopes, nodes=nodes,
                           started_at_ms=first_playing)


def load_on_the_way(s: Session, broadcast_id: str, store: AudioStore,
                    chunk_size: int) -> ActiveBroadcast | None:
    """:func:`load_active` of a broadcast still being sent or on air (None otherwise): a restart,
    or a takeover of a dead controller's broadcast (controller/airing/custody.py)."""
    bc = s.get(Broadcast, broadcast_id)
    if bc is None or bc.status not in (BroadcastStatus.SENDING.value, BroadcastStatus.ACTIVE.value):
        return None
    active = load_active(s, bc, store, chunk_size)
    active.published = bc.status == BroadcastStatus.ACTIVE.value
    return active


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
