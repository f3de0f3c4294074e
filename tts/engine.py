"""Speech engine interface and the registry of engines by name.

An engine turns normalised text into mono 16-bit PCM (a ``pydub.AudioSegment``).
It declares its voices, the accent of each voice (which picks the dialect rules of
the text normaliser and the voice used when falling back to another engine), the
longest text one call accepts (longer text is split at sentence boundaries) and
whether it honours ``speed`` itself (otherwise the audio is time-stretched).
Built-in engines (``espeak-ng``, ``gtts``) register themselves lazily the first
time the registry is queried; extra engines (e.g. the configurable HTTP engine)
are added with :func:`register_engine`.
"""

from __future__ import annotations

import abc
import importlib
import logging
import threading
from collections.abc import Mapping
from types import MappingProxyType

from tts.audio import AudioSegment
from tts.errors import EngineError, UnknownVoiceError
from tts.vi.numbers import Dialect

__all__ = [
    "SpeechEngine",
    "available_engines",
    "get_engine",
    "register_engine",
    "unregister_engine",
]

logger = logging.getLogger(__name__)

_BUILTIN_MODULES: tuple[str, ...] = ("tts.espeak", "tts.gtts_engine")

_registry: dict[str, SpeechEngine] = {}
_registry_lock = threading.RLock()
_builtins_loaded = False


class SpeechEngine(abc.ABC):
    """A text-to-speech backend.

    Subclasses set ``name`` and ``voices`` (canonical, lower-case voice names)
    and implement :meth:`synthesize`; ``accents`` maps a voice to ``north``,
    ``central`` or ``south`` (default north), ``max_chars`` is the longest text one
    call accepts and ``supports_speed`` says whether ``speed`` is honoured.
    """

    name: str
    voices: tuple[str, ...]
    accents: Mapping[str, Dialect] = MappingProxyType({})
    max_chars: int = 5000
    supports_speed: bool = True

    @abc.abstractmethod
    def synthesize(self, text: str, *, voice: str, speed: float) -> AudioSegment:
        """Speak ``text`` and return mono 16-bit PCM audio.

        ``voice`` is one of :attr:`voices`; ``speed`` is a multiplier of the
        engine's normal speaking rate (1.0 = normal).
        """

    def resolve_voice(self, voice: str) -> str:
        """Return the canonical voice name for ``voice`` (case-insensitive).

        Raises :class:`UnknownVoiceError` listing the valid voices.
        """
        wanted = voice.strip().lower()
        for candidate in self.voices:
            if candidate.lower() == wanted:
                return candidate
        raise UnknownVoiceError(voice, self.voices, self.name)

    def accent(self, voice: str) -> Dialect:
        """The accent (and so the number-reading dialect) of ``voice``."""
        return self.accents.get(voice, "north")

    def voice_for_accent(self, accent: Dialect) -> str:
        """The first voice with ``accent``, else the engine's first voice (used when falling back)."""
        for voice in self.voices:
            if self.accent(voice) == accent:
                return voice
        return self.voices[0]

    def describe(self) -> dict[str, object]:
        """What the API shows about this engine."""
        return {
            "name": self.name,
            "voices": [{"id": v, "accent": self.accent(v)} for v in self.voices],
            "max_chars": self.max_chars,
            "supports_speed": self.supports_speed,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} voices={self.voices!r}>"


def _load_builtins() -> None:
    global _builtins_loaded
    with _registry_lock:
        if _builtins_loaded:
            return
        _builtins_loaded = True  # set first: the modules call register_engine()
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def register_engine(engine: SpeechEngine, *, replace: bool = False) -> None:
    """Make ``engine`` available under ``engine.name``.

    Registering a second engine under an existing name raises ``ValueError``
    unless ``replace`` is true.
    """
    if not isinstance(engine, SpeechEngine):
        raise TypeError(f"expected a SpeechEngine, got {type(engine).__name__}")
    if not engine.name or not engine.voices:
        raise ValueError("a speech engine needs a non-empty name and at least one voice")
    with _registry_lock:
        if engine.name in _registry and not replace:
            raise ValueError(f"a speech engine named {engine.name!r} is already registered")
        _registry[engine.name] = engine
    logger.debug("registered speech engine %s with voices %s", engine.name, engine.voices)


def unregister_engine(name: str) -> None:
    """Remove the engine registered as ``name`` (no error if absent)."""
    with _registry_lock:
        _registry.pop(name, None)


def get_engine(name: str) -> SpeechEngine:
    """Return the engine registered as ``name`` or raise :class:`EngineError`."""
    _load_builtins()
    with _registry_lock:
        engine = _registry.get(name)
        if engine is None:
            known = ", ".join(sorted(_registry)) or "(none)"
            raise EngineError(f"Unknown speech engine '{name}'. Available engines: {known}.", engine=name)
        return engine


def available_engines() -> tuple[str, ...]:
    """Names of all registered engines, sorted."""
    _load_builtins()
    with _registry_lock:
        return tuple(sorted(_registry))
