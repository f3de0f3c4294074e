"""gTTS: Google Translate's speech (lang ``vi``), the engine of the design card.

The request bodies come from the ``gtts`` package itself (its RPC packaging and, for
text over 100 characters, its tokenizer), so what goes over the wire is what gTTS
sends. The transport is ours (:mod:`tts.http`) because gTTS has no retry, no backoff
on HTTP 429 and no way to point it at another address: ``base_url`` (default
``https://translate.google.com``) makes the engine testable against a local server
and usable behind a relay. Between two requests the engine waits ``pause_s``:
Google answers 429 to clients that go too fast.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import time
from types import MappingProxyType

from tts.audio import AudioSegment, decode_audio
from tts.engine import SpeechEngine, register_engine
from tts.errors import EngineError
from tts.http import RetryPolicy, request

__all__ = ["DEFAULT_BASE_URL", "ENGINE_NAME", "GttsEngine"]

logger = logging.getLogger(__name__)

ENGINE_NAME = "gtts"
DEFAULT_BASE_URL = "https://translate.google.com"
RPC_PATH = "/_/TranslateWebserverUi/data/batchexecute"
SERVICE = "Google Translate text-to-speech"
_AUDIO = re.compile(r'jQ1olc","\[\\"(.*?)\\"]')


class GttsEngine(SpeechEngine):
    """Google Translate TTS in Vietnamese; one voice, northern accent, 100 characters a request."""

    name = ENGINE_NAME
    voices = ("vi",)
    accents = MappingProxyType({"vi": "north"})
    max_chars = 100  # gTTS.GOOGLE_TTS_MAX_CHARS
    supports_speed = False  # only "slow"; other speeds are time-stretched by the pipeline

    def __init__(self, *, base_url: str = DEFAULT_BASE_URL, policy: RetryPolicy | None = None,
                 pause_s: float = 0.5) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.pause_s = pause_s
        self._lock = threading.Lock()
        self._last_request = 0.0

    def _bodies(self, text: str) -> list[str]:
        try:
            from gtts import gTTS
        except ImportError as exc:
            raise EngineError("The gTTS engine needs the 'gtts' package: pip install gtts.",
                              engine=self.name) from exc
        try:
            bodies = gTTS(text, lang="vi", lang_check=False).get_bodies()
        except AssertionError:  # gTTS found nothing to say (punctuation only)
            return []
        return [b if isinstance(b, str) else bytes(b).decode("ascii") for b in bodies if b]

    def _pace(self) -> None:
        wait = self._last_request + self.pause_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_request = time.monotonic()

    def _fetch(self, body: str) -> bytes:
        from gtts import gTTS

        with self._lock:
            self._pace()
            response = request(
                "POST", self.base_url + RPC_PATH, service=SERVICE, engine=self.name, policy=self.policy,
                data=body, headers=dict(gTTS.GOOGLE_TTS_HEADERS),
            )
        found = _AUDIO.search(response.text)
        if not found:
            raise EngineError(f"{SERVICE} answered without audio (its protocol may have changed): "
                              f"{response.text[:120]!r}", engine=self.name)
        try:
            return base64.b64decode(found.group(1), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EngineError(f"{SERVICE} sent audio that is not valid base64.", engine=self.name) from exc

    def synthesize(self, text: str, *, voice: str, speed: float) -> AudioSegment:
        self.resolve_voice(voice)
        bodies = self._bodies(text)
        if not bodies:
            raise EngineError("gTTS found nothing to read in this text.", engine=self.name)
        logger.debug("gtts: %d chars in %d request(s)", len(text), len(bodies))
        mp3 = b"".join(self._fetch(body) for body in bodies)
        if not mp3:
            raise EngineError(f"{SERVICE} returned an empty audio file.", engine=self.name)
        return decode_audio(mp3, engine=self.name)


register_engine(GttsEngine(), replace=True)
