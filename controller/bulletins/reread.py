"""Bulletins read again after a pronunciation dictionary changes (issue 11 item 4).

An entry reaches the bulletins of its org unit and of the units below it. Those whose spoken
text changes are rendered again with the new dictionary, so that what airs follows the ward's
pronunciation; an approved one whose audio changes goes back to the approval queue
(controller/bulletins/binding.py), with the reason and the new spoken text, audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

import tts
from controller.bulletins.binding import reopen
from controller.bulletins.dictionary import load_dictionary, reached_by
from controller.bulletins.models import Bulletin, BulletinSpeech
from controller.bulletins.render import store_audio
from controller.core.audiostore import AudioStore
from tts.vi.numbers import Dialect

logger = logging.getLogger(__name__)

RECORDING_VOICE = "recording"  # recorded bulletins (controller/bulletins/recordings.py) have no spoken text
MAX_RECHECK = 500  # newest bulletins re-read after a change (older ones keep their approved audio)

#: render options for reading a bulletin again: (bulletin, how it was read) -> tts.render kwargs
OptionsFor = Callable[[Bulletin, BulletinSpeech], dict[str, Any]]


@dataclass
class Reread:
    changed: list[int] = field(default_factory=list)  # bulletins whose audio was rendered again
    reopened: list[int] = field(default_factory=list)  # approved ones sent back for approval


def use_audio(s: Session, b: Bulletin, speech: BulletinSpeech, audio: tts.RenderedAudio,
              store: AudioStore) -> None:
    """Store newly rendered audio and make it the bulletin's (no commit; approval unchanged)."""
    store_audio(s, store, data=audio.data, sha256=audio.sha256, codec=audio.codec,
                duration_ms=audio.duration_ms, sample_rate=audio.sample_rate,
                bitrate_kbps=audio.bitrate_kbps, engine=audio.engine, voice=audio.voice)
    b.audio_sha256, b.warnings = audio.sha256, list(audio.warnings)
    speech.spoken_text, speech.engine, speech.voice = audio.text, audio.engine, audio.voice
    speech.dictionary_hits = list(audio.dictionary_hits)
    s.add(speech)
    s.add(b)


def _dialect(speech: BulletinSpeech) -> Dialect:
    try:
        engine = tts.get_engine(speech.engine)
        return engine.accent(engine.resolve_voice(speech.voice))
    except tts.TTSError:
        return "north"


def recheck_after_dictionary_change(s: Session, *, org_unit_id: str | None, options_for: OptionsFor,
                                    store: AudioStore, by: str, change: str) -> Reread:
    """Re-read the bulletins a changed dictionary of ``org_unit_id`` reaches; re-render those whose
    spoken text changes, and send the approved ones among them back for approval (blocking:
    synthesis; run in a thread). The caller withdraws the broadcasts of the reopened ones."""
    reach = reached_by(s, org_unit_id)
    q = select(Bulletin).where(col(Bulletin.approval) != "rejected", col(Bulletin.voice) != RECORDING_VOICE)
    if reach is not None:
        q = q.where(col(Bulletin.org_unit_id).in_(reach))
    out = Reread()
    dictionaries: dict[str | None, dict[str, str]] = {}
    for b in s.exec(q.order_by(col(Bulletin.id).desc()).limit(MAX_RECHECK)).all():
        speech = s.get(BulletinSpeech, b.id)
        if speech is None:
            continue
        if b.org_unit_id not in dictionaries:
            dictionaries[b.org_unit_id] = load_dictionary(s, b.org_unit_id)
        dictionary = dictionaries[b.org_unit_id]
        if tts.normalize(b.text, dialect=_dialect(speech), dictionary=dictionary).text == speech.spoken_text:
            continue
        try:
            audio = tts.render(b.text, dictionary=dictionary, **options_for(b, speech))
        except tts.TTSError as exc:
            logger.error("bulletin %s could not be read again after %s: %s", b.id, change, exc)
            if b.approval == "approved":
                reopen(s, b, by=by, reason=f"{change} changes its spoken text, but it could not be "
                                           f"rendered again ({exc}); the approved audio is kept")
                out.reopened.append(b.id or 0)
            continue
        s.refresh(b)
        old = b.audio_sha256
        use_audio(s, b, speech, audio, store)
        s.commit()
        assert b.id is not None
        out.changed.append(b.id)
        logger.info("bulletin %s read again after %s: audio %s → %s", b.id, change, (old or "")[:12],
                    audio.sha256[:12])
        if b.approval == "approved" and audio.sha256 != b.approved_sha256:
            reopen(s, b, by=by, reason=f"{change} changed its spoken text to: {audio.text}")
            out.reopened.append(b.id)
    return out
