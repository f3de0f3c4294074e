"""Text-to-speech for ward bulletins: Vietnamese text in, node-ready MP3 out.

Usage::

    from tts import render
    audio = render("Thông báo: sáng mai phường tổ chức tiêm phòng", voice="vi")
    audio.data, audio.duration_ms, audio.sha256
"""

from tts.engine import SpeechEngine, available_engines, get_engine, register_engine
from tts.errors import (
    EmptyTextError,
    EngineError,
    InvalidOptionError,
    TextTooLongError,
    TTSError,
    UnknownVoiceError,
)
from tts.render import MAX_TEXT_CHARS, RenderedAudio, prepare_text, render

__all__ = [
    "MAX_TEXT_CHARS",
    "EmptyTextError",
    "EngineError",
    "InvalidOptionError",
    "RenderedAudio",
    "SpeechEngine",
    "TTSError",
    "TextTooLongError",
    "UnknownVoiceError",
    "available_engines",
    "get_engine",
    "prepare_text",
    "register_engine",
    "render",
]
