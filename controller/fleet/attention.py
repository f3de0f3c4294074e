"""The attention tone every unit keeps in flash (docs/protocol.md §1 config ``attention``).

An emergency must sound in every online unit within a second of the tap — sooner than any speech
can be rendered, sent and verified. So each unit holds a short tone, provisioned through its
retained config (the file in base64 and its SHA-256, which the unit checks before each sounding),
and sounds it the instant an emergency's manifest arrives (devices/node_rules.py
``attention_due``). The tone is synthesised once (``tts.sounds.unit_attention_tone``, MP3) by the
first controller that needs it and kept in the audio store under the label ``attention-tone``
(controller/core/audiostore.py), so every controller on the database hands the units the very same
bytes (two tones would make the units' configs, and their flash, flip between them).
"""

from __future__ import annotations

import base64
import functools
import logging

from controller.core.audiostore import DbAudioStore, LabelTaken, digest
from devices import protocol as p

logger = logging.getLogger(__name__)

TONE_FILE = "attention-tone.mp3"  # where it was kept before the audio store (migration 0013 imports it)
TONE_LABEL = "attention-tone"


@functools.lru_cache(maxsize=1)
def _synthesised() -> bytes:
    from tts.audio import encode  # the speech stack is needed only when the store has no tone yet
    from tts.sounds import unit_attention_tone

    return encode(unit_attention_tone(), bitrate_kbps=32)


def _stored(store: DbAudioStore, duration_ms: int) -> bytes:
    """The labelled tone's bytes, synthesised and stored first if no controller did yet."""
    found = store.labelled(TONE_LABEL)
    if found is not None:
        return store.get(found.sha256)
    data = _synthesised()
    try:
        store.put(data, sha256=digest(data), codec="mp3", duration_ms=duration_ms, label=TONE_LABEL)
    except LabelTaken:  # another controller stored its own a moment ago: use that one
        found = store.labelled(TONE_LABEL)
        if found is None:
            raise
        return store.get(found.sha256)
    return data


def attention_tone(store: DbAudioStore) -> p.AttentionTone | None:
    """The ward's tone (from the audio store; made and stored the first time); None if it cannot be
    had (the units then report ``missing`` on an emergency and play the speech alone). Blocking."""
    from tts.audio import AudioSegment  # noqa: F401  (first: it quiets pydub's ffmpeg warning)
    from tts.sounds import UNIT_TONE_MS

    try:
        data = _stored(store, UNIT_TONE_MS)
    except Exception:
        logger.exception("cannot make or load the attention tone; units get none")
        return None
    if not 0 < len(data) <= p.MAX_TONE_BYTES:
        logger.error("the attention tone is %d bytes (at most %d); units get none", len(data),
                     p.MAX_TONE_BYTES)
        return None
    return p.AttentionTone(sha256=digest(data), duration_ms=UNIT_TONE_MS,
                           data=base64.b64encode(data).decode())
