"""Speech engine interface and the registry of engines by name.

An engine turns cleaned text into mono 16-bit PCM (a ``pydub.AudioSegment``).
Built-in engines (currently only ``espeak-ng``) register themselves lazily the
first time the registry is queried; extra engines can be added with
:func:`register_engine`.
"""

from __future__ import annotations

import abc
import importlib
import logging
import threading

from tts.audio import AudioSegment
from tts.errors import EngineError, UnknownVoiceError

__all__ = [
    "SpeechEngine",
    "available_engines",
    "get_engine",
    "register_engine",
    "unregister_engine",
]

logger = logging.getLogger(__name__)

_BUILTIN_MODULES: tuple[str, ...] = ("tts.espeak",)

_registry: dict[str, SpeechEngine] = {}
_registry_lock = threading.RLock()
_builtins_loaded = False


class SpeechEngine(abc.ABC):
    """A text-to-speech backend.

    Subclasses set ``name`` and ``voices`` (canonical, lower-case voice names)
    and implement :meth:`synthesize`.
    """

    name: str
    voices: tuple[str, ...]

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
