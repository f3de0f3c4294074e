"""espeak-ng speech engine (Vietnamese voices).

Two backends, chosen per call:

* the system ``espeak-ng`` binary when it is on ``PATH`` (run with ``--stdout``);
* otherwise ``libespeak-ng`` bundled in the ``espeakng-loader`` wheel, driven
  through ctypes. The library is process-global state: it is loaded,
  initialised and unloaded around each utterance, under a lock.

Voices: ``vi`` (northern), ``vi-vn-x-central`` (Huế) and ``vi-vn-x-south``
(Sài Gòn). A voice missing from the espeak data raises ``UnknownVoiceError``;
there is no silent fallback to another accent.

Determinism: the same text, voice and speed always give identical PCM (and so
identical MP3 bytes and sha256). The binary backend gets this from a fresh
process per call; the library backend reloads libespeak-ng per utterance
(see ``_LibrarySynth``).
"""

from __future__ import annotations

import _ctypes
import ctypes
import logging
import math
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Protocol

from tts.audio import AudioSegment, segment_from_wav
from tts.engine import SpeechEngine, register_engine
from tts.errors import EngineError, UnknownVoiceError

__all__ = ["BASE_WPM", "ENGINE_NAME", "VOICES", "EspeakEngine", "words_per_minute"]

logger = logging.getLogger(__name__)

ENGINE_NAME = "espeak-ng"
VOICES: tuple[str, ...] = ("vi", "vi-vn-x-central", "vi-vn-x-south")
# voice name -> voice file inside espeak-ng-data (checked before use)
_VOICE_FILES: dict[str, str] = {
    "vi": "lang/aav/vi",
    "vi-vn-x-central": "lang/aav/vi-VN-x-central",
    "vi-vn-x-south": "lang/aav/vi-VN-x-south",
}
BASE_WPM = 175
MIN_WPM, MAX_WPM = 80, 450
BINARY_TIMEOUT_S = 60.0
INSTALL_HINT = (
    "No espeak-ng speech engine is available. Install it with "
    "'pip install espeakng-loader' or 'apt-get install espeak-ng'."
)

# espeak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report data errors instead of calling exit()
_ESPEAK_RATE = 1
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

Backend = Literal["auto", "binary", "library"]

_dlclose: Callable[[int], None] | None = getattr(_ctypes, "dlclose", None)


def words_per_minute(speed: float) -> int:
    """espeak rate for a speed multiplier: 175 wpm * speed, clamped to espeak's range."""
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"speed must be a positive number, got {speed!r}")
    return max(MIN_WPM, min(MAX_WPM, round(BASE_WPM * speed)))


class _Synth(Protocol):
    name: str

    def synthesize(self, text: str, voice: str, wpm: int) -> AudioSegment: ...


class _BinarySynth:
    """Runs an ``espeak-ng`` executable and parses its WAV output."""

    name = "binary"

    def __init__(self, path: str, timeout_s: float) -> None:
        self.path = path
        self.timeout_s = timeout_s

    def synthesize(self, text: str, voice: str, wpm: int) -> AudioSegment:
        cmd = [self.path, "--stdout", "--stdin", "-b", "1", "-v", voice, "-s", str(wpm)]
        # Text goes through stdin (never argv: it could start with '-'). espeak-ng
        # drops the last byte of bulk stdin input, hence the trailing newline.
        try:
            proc = subprocess.run(
                cmd,
                input=(text + "\n").encode("utf-8"),
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(
                f"espeak-ng took longer than {self.timeout_s:g} s and was stopped.",
                engine=ENGINE_NAME,
            ) from exc
        except OSError as exc:
            raise EngineError(f"Could not run espeak-ng ({self.path}): {exc}", engine=ENGINE_NAME) from exc
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        if proc.returncode != 0:
            raise EngineError(
                f"espeak-ng failed (exit code {proc.returncode}): {stderr or 'no error output'}",
                engine=ENGINE_NAME,
            )
        if stderr:
            logger.warning("espeak-ng reported: %s", stderr)
        return segment_from_wav(proc.stdout)


class _LibrarySynth:
    """libespeak-ng via ctypes, loaded afresh for every utterance.

    The C library is process-global state and keeps synthesis state in function
    statics (pitch flutter index, gain control, wave phase...) that no API resets,
    so one long-lived instance renders the same text slightly differently each
    time. Loading it, speaking once, then ``espeak_Terminate`` + ``dlclose``
    makes every render identical to a fresh process (deterministic bytes and
    sha256) for about 10 ms. Calls are serialised by a lock. (If something else
    in the process also loaded this library, dlclose cannot unload it and
    renders are merely near-identical.)
    """

    name = "library"

    def __init__(self, library_path: str, data_path: str) -> None:
        self.library_path = library_path
        self.data_path = Path(data_path)
        self._lock = threading.Lock()
        self._resident: ctypes.CDLL | None = None  # only where dlclose is unavailable
        self.installed_voices = tuple(v for v in VOICES if (self.data_path / _VOICE_FILES[v]).is_file())
        logger.info(
            "libespeak-ng at %s, data %s, voices %s",
            library_path, self.data_path, ", ".join(self.installed_voices) or "(none)",
        )  # fmt: skip

    def _open(self) -> ctypes.CDLL:
        if self._resident is not None:
            return self._resident
        try:
            lib = ctypes.CDLL(self.library_path)
        except OSError as exc:
            raise EngineError(f"Could not load libespeak-ng: {exc}", engine=ENGINE_NAME) from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Terminate.restype = ctypes.c_int
        if _dlclose is None:
            logger.warning("dlclose unavailable: espeak-ng output will not be byte-reproducible")
            self._resident = lib
        return lib

    def _close(self, lib: ctypes.CDLL, initialised: bool) -> None:
        if initialised:
            lib.espeak_Terminate()
        if self._resident is None and _dlclose is not None:
            _dlclose(lib._handle)

    def synthesize(self, text: str, voice: str, wpm: int) -> AudioSegment:
        if voice not in self.installed_voices:
            raise UnknownVoiceError(voice, self.installed_voices, ENGINE_NAME)
        encoded = text.encode("utf-8")
        chunks: list[bytes] = []

        def on_audio(wav: ctypes._Pointer[ctypes.c_short], n: int, _events: int | None) -> int:
            if n > 0 and wav:
                chunks.append(ctypes.string_at(wav, n * 2))
            return 0  # 0 = continue synthesis

        callback = _SynthCallback(on_audio)  # referenced until the library is closed
        with self._lock:
            lib = self._open()
            rate = -1
            try:
                rate = lib.espeak_Initialize(
                    _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(), _INITIALIZE_DONT_EXIT
                )
                if rate <= 0:
                    raise EngineError(
                        f"libespeak-ng failed to initialise with data at {self.data_path}.",
                        engine=ENGINE_NAME,
                    )
                lib.espeak_SetSynthCallback(callback)
                if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                    raise UnknownVoiceError(voice, self.installed_voices, ENGINE_NAME)
                lib.espeak_SetParameter(_ESPEAK_RATE, wpm, 0)
                status = lib.espeak_Synth(
                    encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
                lib.espeak_Synchronize()
            finally:
                self._close(lib, initialised=rate > 0)
        if status != _EE_OK:
            raise EngineError(f"libespeak-ng synthesis failed (status {status}).", engine=ENGINE_NAME)
        return AudioSegment(data=b"".join(chunks), sample_width=2, frame_rate=rate, channels=1)


_library: _LibrarySynth | None = None
_library_lock = threading.Lock()


def _library_synth() -> _LibrarySynth:
    """Initialise libespeak-ng from espeakng-loader once; EngineError if unavailable."""
    global _library
    try:
        import espeakng_loader
    except ImportError as exc:
        raise EngineError(INSTALL_HINT, engine=ENGINE_NAME) from exc
    with _library_lock:
        if _library is None:
            _library = _LibrarySynth(
                str(espeakng_loader.get_library_path()), str(espeakng_loader.get_data_path())
            )
        return _library


class EspeakEngine(SpeechEngine):
    """espeak-ng with Vietnamese voices.

    ``backend="auto"`` uses the system binary when found on PATH, else the
    library from ``espeakng-loader``. ``binary`` overrides the executable path.
    """

    name = ENGINE_NAME
    voices = VOICES
    accents = MappingProxyType({"vi": "north", "vi-vn-x-central": "central", "vi-vn-x-south": "south"})
    max_chars = 20_000

    def __init__(
        self,
        *,
        backend: Backend = "auto",
        binary: str | None = None,
        timeout_s: float = BINARY_TIMEOUT_S,
    ) -> None:
        self.backend = backend
        self.binary = binary
        self.timeout_s = timeout_s
        self.last_backend: str | None = None

    def _select(self) -> _Synth:
        if self.backend in ("auto", "binary"):
            path = self.binary or shutil.which("espeak-ng")
            if path:
                return _BinarySynth(path, self.timeout_s)
            if self.backend == "binary":
                raise EngineError(
                    "The espeak-ng program was not found on PATH. "
                    "Install it with 'apt-get install espeak-ng'.",
                    engine=ENGINE_NAME,
                )
        return _library_synth()

    def synthesize(self, text: str, *, voice: str, speed: float) -> AudioSegment:
        canonical = self.resolve_voice(voice)
        wpm = words_per_minute(speed)
        synth = self._select()
        if synth.name != self.last_backend:
            logger.info("espeak-ng engine using the %s backend", synth.name)
            self.last_backend = synth.name
        logger.debug("espeak-ng: %d chars, voice %s, %d wpm", len(text), canonical, wpm)
        return synth.synthesize(text, canonical, wpm)


register_engine(EspeakEngine(), replace=True)
