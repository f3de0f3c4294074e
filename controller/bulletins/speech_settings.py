"""Speech engine settings (and registering the configured engines)."""

from __future__ import annotations

import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

import tts
from tts.engine import SpeechEngine, get_engine, register_engine
from tts.errors import EngineError
from tts.gtts_engine import GttsEngine
from tts.http import RetryPolicy
from tts.http_engine import HttpEngine, HttpEngineConfig
from tts.render import MP3_BITRATES_KBPS


class GttsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str = Field("https://translate.google.com", description="Google Translate address (or a relay)")
    timeout_s: float = Field(10.0, gt=0, le=120, description="per request")
    retries: int = Field(3, ge=0, le=10, description="extra attempts on network errors, HTTP 429 and 5xx")
    backoff_s: float = Field(1.0, ge=0, le=60, description="first retry delay; doubles each attempt")
    pause_s: float = Field(0.5, ge=0, le=10, description="wait between two requests (Google answers 429 "
                                                         "to clients that go too fast)")


class TtsSettings(BaseModel):
    """The ward's speech: engine and fallbacks, voice, audio format and finishing."""

    model_config = ConfigDict(extra="forbid")
    engine: str = Field("espeak-ng",
                        description="preferred speech engine (espeak-ng, gtts, or an http_engines name)")
    fallback: list[str] = Field(default_factory=lambda: ["espeak-ng"],
                                description="engines tried in order when the preferred one fails")
    voice: str = Field("vi", description="default voice of the preferred engine")
    speed: float = Field(1.0, ge=0.5, le=2.0, description="speaking speed (1.0 = normal)")
    codec: Literal["mp3", "opus"] = Field("mp3", description="audio format sent to the loudspeakers")
    bitrate_kbps: int = Field(32, ge=16, le=128, description="audio bitrate for nodes")
    max_chars: int = Field(5000, gt=0, le=5000, description="longest bulletin text accepted")
    loudness_dbfs: float = Field(-18.0, ge=-40, le=-6, description="speech loudness target (RMS of speech)")
    chime: bool = Field(False, description="play the station chime (nhạc hiệu) before and after bulletins")
    attention_tone: bool = Field(True, description="play the attention tone before emergency bulletins")
    prerender_emergency: bool = Field(True, description="render the emergency templates' audio at start "
                                      "(controller/bulletins/emergency_templates.py)")
    cache_max_mb: int = Field(256, gt=0, description="size bound of the rendered-audio cache")
    preview_max_mb: int = Field(64, gt=0, description="size bound of stored preview audio")
    upload_max_mb: int = Field(25, gt=0, le=500, description="largest recorded-audio upload accepted")
    upload_max_minutes: int = Field(30, gt=0, le=240, description="longest recorded bulletin accepted")
    gtts: GttsSettings = Field(default_factory=GttsSettings)  # type: ignore[arg-type]
    http_engines: list[HttpEngineConfig] = Field(
        default_factory=list, description="commercial HTTP speech services (see docs/speech.md)")

    @field_validator("bitrate_kbps")
    @classmethod
    def _bitrate(cls, v: int) -> int:
        if v not in MP3_BITRATES_KBPS:
            allowed = ", ".join(str(b) for b in MP3_BITRATES_KBPS if 16 <= b <= 128)
            raise ValueError(f"choose one of {allowed}")
        return v

    def register_engines(self) -> None:
        """Make the configured gTTS and HTTP engines available (idempotent)."""
        global _applied
        state = self.model_dump_json(include={"gtts", "http_engines"})
        with _register_lock:
            if _applied is not None and _applied[0] == state and _still_registered(_applied[1]):
                return
            g = self.gtts
            policy = RetryPolicy(timeout_s=g.timeout_s, retries=g.retries, backoff_s=g.backoff_s)
            engines: list[SpeechEngine] = [GttsEngine(base_url=g.base_url, policy=policy, pause_s=g.pause_s)]
            engines += [HttpEngine(cfg) for cfg in self.http_engines]
            for engine in engines:
                register_engine(engine, replace=True)
            _applied = (state, engines)


def _still_registered(engines: list[SpeechEngine]) -> bool:
    try:
        return all(get_engine(e.name) is e for e in engines)
    except EngineError:
        return False


_applied: tuple[str, list[SpeechEngine]] | None = None
_register_lock = threading.Lock()


def render_options(cfg: TtsSettings, *, priority: str = "normal", voice: str | None = None,
                   engine: str | None = None, speed: float | None = None) -> dict[str, Any]:
    """Keyword arguments for ``tts.render`` / ``render_bulletin`` from the ward's settings.

    Registers the configured gTTS and HTTP engines first. An explicit ``engine`` is tried
    first and the ward's chain follows it.
    """
    cfg.register_engines()
    first = engine or cfg.engine
    return {
        "engine": first,
        "fallback": [e for e in [cfg.engine, *cfg.fallback] if e != first],
        "voice": voice or (cfg.voice if first == cfg.engine else tts.get_engine(first).voices[0]),
        "speed": cfg.speed if speed is None else speed,
        "codec": cfg.codec,
        "bitrate_kbps": cfg.bitrate_kbps,
        "audio": tts.AudioOptions(loudness_dbfs=cfg.loudness_dbfs, chime=cfg.chime,
                                  attention=priority == "emergency" and cfg.attention_tone),
        "cache_max_bytes": cfg.cache_max_mb * 1024 * 1024,
    }
