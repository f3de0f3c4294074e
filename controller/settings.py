"""Controller settings (pydantic-settings): nested, unknown keys refused, every field described.

Environment variables use the prefix ``LOAPHUONG_`` and ``__`` for nesting, e.g.
``LOAPHUONG_MQTT__HOST=10.0.0.5``. ``DATABASE_URL`` is also honoured as is.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devices.protocol import DEFAULT_CHUNK_SIZE, DEFAULT_PREFIX


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


class TtsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    engine: str = Field("espeak-ng", description="speech engine name")
    voice: str = Field("vi", description="default voice")
    bitrate_kbps: int = Field(32, ge=16, le=128, description="MP3 bitrate for nodes")
    max_chars: int = Field(5000, gt=0, description="longest bulletin text accepted")


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
