"""Controller settings (pydantic-settings): nested, unknown keys refused, every field described.

Environment variables use the prefix ``LOAPHUONG_`` and ``__`` for nesting, e.g.
``LOAPHUONG_MQTT__HOST=10.0.0.5``. ``DATABASE_URL`` is also honoured as is.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from controller.gateway_settings import Gateways
from controller.netguard import normalize_station
from controller.web_settings import HttpSettings, LoginSettings
from devices.protocol import DEFAULT_CHUNK_SIZE, DEFAULT_PREFIX
from scheduler.arbiter import PreemptPolicy
from scheduler.settings import ScheduleSettings
from tts.engine import SpeechEngine, get_engine, register_engine
from tts.errors import EngineError
from tts.gtts_engine import GttsEngine
from tts.http import RetryPolicy
from tts.http_engine import HttpEngine, HttpEngineConfig
from tts.render import MP3_BITRATES_KBPS


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field("127.0.0.1", description="MQTT broker host")
    port: int = Field(1883, ge=1, le=65535, description="MQTT broker port")
    username: str | None = Field(None, description="controller's broker account")
    password: str | None = Field(None, description="controller's broker password")
    tls: bool = Field(False, description="connect with TLS (mqtts)")
    ca_file: str | None = Field(None, description="CA bundle for TLS")
    prefix: str = Field(DEFAULT_PREFIX, description="topic prefix shared with the nodes")
    client_id: str = Field("loaphuong-controller", description="controller's MQTT client id")


class DeliverySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunk_size: int = Field(DEFAULT_CHUNK_SIZE, gt=0, le=65536, description="audio bytes per chunk message")
    default_valid_s: int = Field(3600, gt=0, description="how long a broadcast stays deliverable")
    resend_after_s: float = Field(15.0, gt=0, description="re-offer the manifest to a silent online node")
    max_resends: int = Field(5, ge=0, description="re-offers per node before waiting for expiry")
    sweep_s: float = Field(2.0, gt=0, description="how often delivery timeouts are checked")
    flush_s: float = Field(0.2, gt=0, description="how often batched acks are written to the database")
    heartbeat_timeout_s: float = Field(45.0, gt=0, le=60, description="silent node becomes offline after")
    preempt_policy: PreemptPolicy = Field(
        PreemptPolicy.DROP,
        description="what an emergency does to the item it interrupts: drop | restart | resume")
    start_margin_ms: int = Field(
        1500, ge=100, le=30_000,
        description="play commands name an instant this far ahead, so units start in step")
    ready_wait_s: float = Field(
        10.0, ge=0, le=300,
        description="air-now waits at most this long for online units to verify the audio")


class LiveSettings(BaseModel):
    """Live sessions from a phone: the archive of what was spoken (docs/live.md)."""

    model_config = ConfigDict(extra="forbid")
    archive: bool = Field(True, description="keep the audio of live sessions (MP3, <audio_dir>/live/)")
    retention_days: int = Field(90, ge=1, le=3650, description="archived live audio is deleted after this")
    archive_max_minutes: int = Field(120, ge=1, le=24 * 60,
                                     description="archive at most this much of one session (the rest airs "
                                                 "but is not kept)")
    bitrate_kbps: int = Field(32, ge=16, le=128, description="MP3 bitrate of the archive (mono)")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="web origins besides the controller's own (e.g. https://loa.example.vn behind a "
                    "proxy that rewrites Host) whose pages may open the live WebSocket")
    sweep_s: float = Field(3600.0, gt=0, description="how often archives past retention are deleted")


class RelaySettings(BaseModel):
    """Relay sessions (tiếp sóng) when several controllers share a database (docs/live.md)."""

    model_config = ConfigDict(extra="forbid")
    beat_s: float = Field(10.0, gt=0, le=300,
                          description="how often a controller marks its relays as still run by it")
    owner_ttl_s: float = Field(45.0, gt=0, le=3600,
                               description="a relay whose controller has not marked it for this long is "
                                           "taken over by another controller")
    allowed_stations: list[str] = Field(
        default_factory=list, max_length=100,
        description="stations (origins scheme://host[:port]) that may be relayed although their address "
                    "is loopback, private or otherwise not public; any other relay URL must resolve to "
                    "public addresses only (controller/netguard.py)")

    @field_validator("allowed_stations")
    @classmethod
    def _stations(cls, v: list[str]) -> list[str]:
        return [normalize_station(x) for x in v]

    @model_validator(mode="after")
    def _beat_within_ttl(self) -> RelaySettings:
        if self.beat_s * 2 > self.owner_ttl_s:
            raise ValueError("beat_s must be at most half of owner_ttl_s")
        return self


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOAPHUONG_", env_nested_delimiter="__", extra="forbid"
    )
    data_dir: Path = Field(Path("data"), description="SQLite database, audio and cache live here")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir")
    environment: str = Field("development", description="development | production")
    ward_name: str = Field("Phường mẫu", description="shown in the UI")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)  # type: ignore[arg-type]
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)  # type: ignore[arg-type]
    tts: TtsSettings = Field(default_factory=TtsSettings)  # type: ignore[arg-type]
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)  # type: ignore[arg-type]
    live: LiveSettings = Field(default_factory=LiveSettings)  # type: ignore[arg-type]
    relay: RelaySettings = Field(default_factory=RelaySettings)  # type: ignore[arg-type]
    login: LoginSettings = Field(default_factory=LoginSettings)  # type: ignore[arg-type]
    http: HttpSettings = Field(default_factory=HttpSettings)  # type: ignore[arg-type]
    gateways: Gateways = Field(default_factory=dict)
    admin_password: str | None = Field(
        None, description="set the admin password at first start (else one is generated and printed)"
    )

    @field_validator("environment")
    @classmethod
    def _env(cls, v: str) -> str:
        if v not in ("development", "production"):
            raise ValueError("environment must be 'development' or 'production'")
        return v

    @property
    def db_url(self) -> str:
        url = self.database_url or os.environ.get("DATABASE_URL")
        if url:
            return url
        return f"sqlite:///{(self.data_dir / 'loaphuong.db').resolve()}"

    @property
    def audio_dir(self) -> Path:
        return self.data_dir / "audio"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "tts-cache"
