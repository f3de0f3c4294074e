"""The controller's settings: one pydantic-settings model (``LOAPHUONG_*``, nested with ``__``).

Each capability declares its own section (controller/airing/settings.py, controller/fleet/settings.py,
scheduler/settings.py, ...); :class:`Settings` gathers them with the few top-level fields, refusing
unknown keys. Services are handed their own section, not the whole Settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from controller.airing.settings import DeliverySettings
from controller.bulletins.speech_settings import (
    TtsSettings,
)
from controller.core.db_settings import DatabaseSettings
from controller.core.web_settings import HttpSettings, LoginSettings, MetricsSettings
from controller.fleet.gateway_settings import Gateways
from controller.fleet.settings import MqttSettings
from controller.live.settings import LiveSettings
from controller.relays.settings import RelaySettings
from scheduler.settings import ScheduleSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOAPHUONG_", env_nested_delimiter="__", extra="forbid"
    )
    data_dir: Path = Field(Path("data"), description="SQLite database, audio and cache live here")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)  # type: ignore[arg-type]
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
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)  # type: ignore[arg-type]
    log_json: bool = Field(False, description="log one JSON object per line (ts, level, logger, msg, extra "
                                              "fields) instead of text; also `loaphuong --log-json`")
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
