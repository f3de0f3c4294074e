"""Text-to-speech for ward bulletins: Vietnamese text in, node-ready audio out.

Usage::

    from tts import render
    audio = render("Họp lúc 7h30 ngày 22/11 tại nhà văn hóa", voice="vi",
                   engine="gtts", fallback=["espeak-ng"])
    audio.data, audio.duration_ms, audio.text, audio.warnings

``tts.vi.normalize`` gives the spoken form alone; ``tts.pipeline.AudioOptions`` sets
loudness, chimes, attention tone and repeats.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Where each public name lives. The package loads them on first use (PEP 562), so that
# ``import tts.vi`` (``loaphuong normalize``) does not pay for audio, HTTP and engine imports.
_HOME = {
    **dict.fromkeys(("SpeechEngine", "available_engines", "get_engine", "register_engine",
                     "unregister_engine"), "tts.engine"),
    **dict.fromkeys(("EmptyTextError", "EngineError", "InvalidOptionError", "SilentSpeechError",
                     "TextTooLongError", "TTSError", "UnknownVoiceError"), "tts.errors"),
    **dict.fromkeys(("HttpEngine", "HttpEngineConfig", "SpeedMap"), "tts.http_engine"),
    "AudioOptions": "tts.pipeline",
    **dict.fromkeys(("MAX_TEXT_CHARS", "RenderedAudio", "prepare_text", "render"), "tts.render"),
    **dict.fromkeys(("Normalized", "normalize"), "tts.vi"),
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'tts' has no attribute {name!r}")
    for public, module in _HOME.items():  # the whole public API at once, as an eager import would
        globals()[public] = getattr(importlib.import_module(module), public)
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """Importing the submodule ``tts.render`` must not hide the function ``tts.render`` (as the eager
    ``from tts.render import render`` used to ensure): a public name always wins over a submodule."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _HOME and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
