"""The attention tone every unit keeps in flash (docs/protocol.md §1 config ``attention``).

An emergency must sound in every online unit within a second of the tap — sooner than any speech
can be rendered, sent and verified. So each unit holds a short tone, provisioned through its
retained config (the file in base64 and its SHA-256, which the unit checks before each sounding),
and sounds it the instant an emergency's manifest arrives (devices/node_rules.py
``attention_due``). The tone is synthesised here once (``tts.sounds.unit_attention_tone``, MP3) and
kept in the data directory, so every controller of a ward names the same file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
from pathlib import Path

from devices import protocol as p

logger = logging.getLogger(__name__)

TONE_FILE = "attention-tone.mp3"


@functools.lru_cache(maxsize=1)
def _synthesised() -> bytes:
    from tts.audio import encode  # the speech stack is needed only when no kept file exists
    from tts.sounds import unit_attention_tone

    return encode(unit_attention_tone(), bitrate_kbps=32)


def attention_tone(data_dir: Path) -> p.AttentionTone | None:
    """The tone of ``data_dir`` (synthesised and kept there the first time); None if it cannot be
    made (the units then report ``missing`` on an emergency and play the speech alone)."""
    from tts.audio import AudioSegment  # noqa: F401  (first: it quiets pydub's ffmpeg warning)
    from tts.sounds import UNIT_TONE_MS

    path = data_dir / TONE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        try:
            data = _synthesised()
        except Exception:
            logger.exception("cannot synthesise the attention tone; units get none")
            return None
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    if not 0 < len(data) <= p.MAX_TONE_BYTES:
        logger.error("%s is %d bytes (at most %d); units get no attention tone", path, len(data),
                     p.MAX_TONE_BYTES)
        return None
    return p.AttentionTone(sha256=hashlib.sha256(data).hexdigest(), duration_ms=UNIT_TONE_MS,
                           data=base64.b64encode(data).decode())
