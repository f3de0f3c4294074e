"""Exceptions raised by the text-to-speech package.

Every error derives from :class:`TTSError` and carries a message that can be
shown to the ward operator as-is (it says what went wrong and what to do).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "EmptyTextError",
    "EngineError",
    "InvalidOptionError",
    "TTSError",
    "TextTooLongError",
    "UnknownVoiceError",
]


class TTSError(Exception):
    """Base class for every text-to-speech failure."""


class EmptyTextError(TTSError):
    """The text contains nothing speakable (no letters or digits)."""

    def __init__(self) -> None:
        super().__init__(
            "The bulletin has nothing to read aloud: the text is empty or contains "
            "only spaces, punctuation or emoji. Please type at least one word."
        )


class TextTooLongError(TTSError):
    """The text exceeds the maximum number of characters for one bulletin."""

    def __init__(self, length: int, limit: int) -> None:
        self.length = length
        self.limit = limit
        super().__init__(
            f"The bulletin text is too long: it has {length} characters but the "
            f"limit is {limit} characters. Please shorten it by {length - limit} "
            "characters or split it into several bulletins."
        )


class UnknownVoiceError(TTSError):
    """The requested voice does not exist for the chosen engine."""

    def __init__(self, voice: str, valid: Sequence[str], engine: str | None = None) -> None:
        self.voice = voice
        self.valid = tuple(valid)
        self.engine = engine
        where = f" for speech engine '{engine}'" if engine else ""
        choices = ", ".join(self.valid) if self.valid else "(none installed)"
        super().__init__(f"Unknown voice '{voice}'{where}. Valid voices: {choices}.")


class EngineError(TTSError):
    """The speech engine (or the audio encoder) failed or produced no audio."""

    def __init__(self, message: str, *, engine: str | None = None) -> None:
        self.engine = engine
        super().__init__(message)


class SilentSpeechError(EngineError):
    """The engine read the text as silence: nothing in it is something it can pronounce (another
    script, symbols it does not read). The text's problem, not the engine's (422, not 503)."""

    def __init__(self, engine: str) -> None:
        super().__init__(
            f"The speech engine '{engine}' reads this text as silence: it has no word it can "
            "pronounce (letters of another script, or symbols). Please write the words in Vietnamese.",
            engine=engine,
        )


class InvalidOptionError(TTSError, ValueError):
    """A rendering option (speed, bitrate, codec...) is out of range."""
