"""Live-speaking settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
