"""Recorded bulletins: a prepared recording stored as an audio asset and a bulletin.

The bulletin is like a text bulletin (same table, same audio route, same broadcasts and
delivery); its ``voice`` is ``"recording"`` and its asset's engine is ``"recording"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlmodel import Session

from controller.bulletins.models import Bulletin
from controller.bulletins.render import store_audio
from controller.core.audiostore import AudioStore
from tts.recording import PreparedRecording

logger = logging.getLogger(__name__)

RECORDING_VOICE = "recording"


def store_recording(s: Session, rec: PreparedRecording, *, title: str, text: str, priority: str,
                    store: AudioStore, created_by: str,
                    prepare: Callable[[Bulletin], None] | None = None) -> Bulletin:
    """Put the audio in the audio store and add the bulletin (commits);
    ``prepare`` sets its approval state before it is first written (controller/bulletins/approval.py
    ``initial_approval``: an editor's recording is never stored as approved, not even briefly)."""
    store_audio(s, store, data=rec.data, sha256=rec.sha256, codec=rec.codec,
                duration_ms=rec.duration_ms, sample_rate=rec.sample_rate, bitrate_kbps=rec.bitrate_kbps,
                engine=RECORDING_VOICE, voice=rec.source_format)
    bulletin = Bulletin(title=title, text=text, voice=RECORDING_VOICE, priority=priority,
                        audio_sha256=rec.sha256, created_by=created_by, warnings=[])
    if prepare is not None:
        prepare(bulletin)
    s.add(bulletin)
    s.commit()
    s.refresh(bulletin)
    logger.info("recorded bulletin %s: %s, %d ms", bulletin.id, rec.source_format, rec.duration_ms)
    return bulletin
