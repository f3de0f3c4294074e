"""Text-to-speech for ward bulletins: Vietnamese text in, node-ready audio out.

Usage::

    from tts import render
    audio = render("Họp lúc 7h30 ngày 22/11 tại nhà văn hóa", voice="vi",
                   engine="gtts", fallback=["espeak-ng"])
    audio.data, audio.duration_ms, audio.text, audio.warnings

``tts.vi.normalize`` gives the spoken form alone; ``tts.pipeline.AudioOptions`` sets
loudness, chimes, attention tone and repeats.
"""

from tts.engine import SpeechEngine, available_engines, get_engine, register_engine, unregister_engine
from tts.errors import (
    EmptyTextError,
    EngineError,
    InvalidOptionError,
    SilentSpeechError,
    TextTooLongError,
    TTSError,
    UnknownVoiceError,
)
from tts.http_engine import HttpEngine, HttpEngineConfig, SpeedMap
from tts.pipeline import AudioOptions
from tts.render import MAX_TEXT_CHARS, RenderedAudio, prepare_text, render
from tts.vi import Normalized, normalize

__all__ = [
    "MAX_TEXT_CHARS",
    "AudioOptions",
    "EmptyTextError",
    "EngineError",
    "HttpEngine",
    "HttpEngineConfig",
    "InvalidOptionError",
    "Normalized",
    "RenderedAudio",
    "SilentSpeechError",
    "SpeechEngine",
    "SpeedMap",
    "TTSError",
    "TextTooLongError",
    "UnknownVoiceError",
    "available_engines",
    "get_engine",
    "normalize",
    "prepare_text",
    "register_engine",
    "render",
    "unregister_engine",
]
