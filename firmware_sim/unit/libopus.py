"""libopus through ctypes: the system's ``libopus.so.0`` (Debian and Raspberry Pi OS: the package
``libopus0``, which PulseAudio and PipeWire already pull in), so the agent needs no compiled
Python package to play Opus. Only the decoder's few calls are bound."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

INSTALL = "sudo apt-get install libopus0"
#: The names tried, in order (the soname first: it is what the Debian package installs).
NAMES = ("libopus.so.0", "libopus.so", "opus")
RATES = (8000, 12000, 16000, 24000, 48000)  # the rates libopus decodes at
MAX_FRAME_MS = 120  # the longest Opus packet
OPUS_SET_GAIN = 4034


class OpusError(ValueError):
    """libopus is missing, or it refused a packet."""


@functools.cache
def _lib(names: tuple[str, ...]) -> ctypes.CDLL | None:
    for name in names:
        path = name if "." in name else ctypes.util.find_library(name)
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.opus_get_version_string.restype = ctypes.c_char_p
        lib.opus_strerror.restype = ctypes.c_char_p
        lib.opus_strerror.argtypes = [ctypes.c_int]
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_decoder_destroy.restype = None
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_decode.restype = ctypes.c_int
        lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                    ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int]
        lib.opus_packet_get_nb_samples.restype = ctypes.c_int
        lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
        return lib
    return None


def load() -> ctypes.CDLL:
    """The library, or :class:`OpusError` saying which package to install."""
    lib = _lib(NAMES)
    if lib is None:
        raise OpusError(f"libopus is not installed, so this unit cannot play Opus ({INSTALL})")
    return lib


def version() -> str:
    """libopus's own version string (e.g. ``libopus 1.3.1``); :class:`OpusError` if it is missing."""
    return str(load().opus_get_version_string().decode("ascii", "replace"))


def _why(lib: ctypes.CDLL, code: int) -> str:
    return str(lib.opus_strerror(code).decode("ascii", "replace"))


def samples(packet: bytes, rate: int = 48000) -> int:
    """How many samples (per channel, at ``rate``) ``packet`` decodes to, read from its header."""
    lib = load()
    n = int(lib.opus_packet_get_nb_samples(packet, len(packet), rate))
    if n < 0:
        raise OpusError(f"an Opus packet is damaged ({_why(lib, n)})")
    return n


class Decoder:
    """One libopus decoder: packets in, 16-bit mono PCM at ``rate`` out (a stereo stream is mixed
    down by libopus itself)."""

    def __init__(self, rate: int, *, gain_q8: int = 0) -> None:
        if rate not in RATES:
            raise OpusError(f"libopus does not decode at {rate} Hz (only {RATES})")
        self._lib = lib = load()
        err = ctypes.c_int(0)
        self._st: int | None = lib.opus_decoder_create(rate, 1, ctypes.byref(err))
        if err.value != 0 or not self._st:
            raise OpusError(f"libopus could not make a decoder: {_why(lib, err.value)}")
        self._max = rate * MAX_FRAME_MS // 1000
        self._buf = (ctypes.c_int16 * self._max)()
        if gain_q8 and lib.opus_decoder_ctl(ctypes.c_void_p(self._st), ctypes.c_int(OPUS_SET_GAIN),
                                            ctypes.c_int(gain_q8)) != 0:
            raise OpusError(f"libopus refused the stream's output gain ({gain_q8 / 256:+.1f} dB)")

    def decode(self, packet: bytes) -> bytes:
        if not packet:
            raise OpusError("an Opus packet is empty")
        if self._st is None:
            raise OpusError("the decoder is closed")
        n = self._lib.opus_decode(self._st, packet, len(packet), self._buf, self._max, 0)
        if n < 0:
            raise OpusError(f"an Opus packet does not decode ({_why(self._lib, n)})")
        return ctypes.string_at(self._buf, n * 2)

    def close(self) -> None:
        if self._st is not None:
            self._lib.opus_decoder_destroy(self._st)
            self._st = None

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
