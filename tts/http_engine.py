"""A speech engine for any HTTP text-to-speech service, described by configuration.

Commercial Vietnamese services (FPT.AI, Viettel AI, MobiFone AI, ...) all take text, a
voice and a speed in a POST and answer with audio, with JSON holding base64 audio, or
with JSON holding a link to the audio (which may take a few seconds to appear). One
:class:`HttpEngineConfig` describes such a service; docs/speech.md has worked examples.

Templates: in ``payload`` values and ``headers``, ``{text}``, ``{voice}`` and ``{speed}``
are replaced (a value that is exactly ``"{speed}"`` keeps its number type), and
``${NAME}`` takes the environment variable NAME (for API keys kept out of config files).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tts.audio import AudioSegment, decode_audio
from tts.engine import SpeechEngine
from tts.errors import EngineError
from tts.http import RetryPolicy, ServiceHttpError, request
from tts.vi.numbers import Dialect

__all__ = ["HttpEngine", "HttpEngineConfig", "SpeedMap"]

logger = logging.getLogger(__name__)

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SpeedMap(BaseModel):
    """Service speed = clamp(round(offset + scale * (speed - 1), digits), minimum, maximum)."""

    model_config = ConfigDict(extra="forbid")
    offset: float = Field(1.0, description="service value for normal speed")
    scale: float = Field(1.0, description="change per unit of our speed multiplier")
    minimum: float = Field(0.5, description="lowest value the service accepts")
    maximum: float = Field(2.0, description="highest value the service accepts")
    digits: int = Field(2, ge=0, le=4, description="decimal places sent (0 sends an integer)")

    def apply(self, speed: float) -> float | int:
        value = round(self.offset + self.scale * (speed - 1.0), self.digits)
        value = min(self.maximum, max(self.minimum, value))
        return int(value) if self.digits == 0 else value


class HttpEngineConfig(BaseModel):
    """One HTTP text-to-speech service."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="engine name used in settings and the API, e.g. 'fpt-ai'")
    url: str = Field(description="address the text is POSTed to")
    voices: dict[str, Dialect] = Field(description="service voice id → accent (north, central, south)")
    body: Literal["json", "form", "text"] = Field("json", description="how the request body is sent")
    payload: dict[str, Any] = Field(
        default_factory=lambda: {"text": "{text}", "voice": "{voice}", "speed": "{speed}"},
        description="JSON or form fields (ignored for body=text, where the text is the body)",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="request headers (templates allowed)")
    response: Literal["audio", "json"] = Field("audio", description="audio bytes, or JSON")
    audio_field: str | None = Field(None, description="JSON path (a.b.c) of base64 audio")
    link_field: str | None = Field(None, description="JSON path of a URL to fetch the audio from")
    link_wait_s: float = Field(30.0, ge=0, description="how long a link may answer 404 while audio is made")
    poll_s: float = Field(1.0, gt=0, description="interval between tries of a link that is not ready")
    speed: SpeedMap | None = Field(None, description="service speed mapping; None = time-stretch instead")
    max_chars: int = Field(2000, gt=0, description="longest text per request")
    timeout_s: float = Field(30.0, gt=0, description="per request")
    retries: int = Field(2, ge=0, le=10, description="extra attempts on network errors, 429 and 5xx")
    backoff_s: float = Field(1.0, ge=0, description="first retry delay (doubles each time)")

    @field_validator("voices")
    @classmethod
    def _voices(cls, v: dict[str, Dialect]) -> dict[str, Dialect]:
        if not v:
            raise ValueError("list at least one voice")
        return v


def _fill(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if value in ("{text}", "{voice}", "{speed}"):
            return values[value[1:-1]]
        out = value
        for k, v in values.items():
            out = out.replace("{" + k + "}", str(v))
        return _env(out)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def _env(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            raise EngineError(f"Environment variable {m.group(1)} is not set (needed by a speech engine).")
        return value

    return _ENV.sub(sub, text)


def _path(data: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data


class HttpEngine(SpeechEngine):
    """An engine whose service is described by :class:`HttpEngineConfig`."""

    def __init__(self, config: HttpEngineConfig) -> None:
        self.config = config
        self.name = config.name
        self.voices = tuple(config.voices)
        self.accents = dict(config.voices)
        self.max_chars = config.max_chars
        self.supports_speed = config.speed is not None
        self.policy = RetryPolicy(timeout_s=config.timeout_s, retries=config.retries,
                                  backoff_s=config.backoff_s)

    def _request_kwargs(self, text: str, voice: str, speed: float) -> dict[str, Any]:
        cfg = self.config
        values: dict[str, Any] = {"text": text, "voice": voice,
                                  "speed": cfg.speed.apply(speed) if cfg.speed else 1.0}
        try:
            headers = {k: str(_fill(v, values)) for k, v in cfg.headers.items()}
            if cfg.body == "text":
                return {"data": text.encode("utf-8"), "headers": {"Content-Type": "text/plain; charset=utf-8",
                                                                  **headers}}
            payload = _fill(cfg.payload, values)
        except EngineError as exc:
            raise EngineError(str(exc), engine=self.name) from exc
        if cfg.body == "json":
            return {"json": payload, "headers": headers}
        return {"data": payload, "headers": headers}

    def _audio_from_json(self, data: Any) -> bytes:
        cfg = self.config
        if cfg.audio_field:
            encoded = _path(data, cfg.audio_field)
            if isinstance(encoded, str) and encoded:
                try:
                    return base64.b64decode(encoded, validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise EngineError(f"{self.name}: '{cfg.audio_field}' is not base64 audio.",
                                      engine=self.name) from exc
        if cfg.link_field:
            link = _path(data, cfg.link_field)
            if isinstance(link, str) and link.startswith(("http://", "https://")):
                return self._download(link)
        message = _path(data, "message") or _path(data, "error") or str(data)[:200]
        raise EngineError(f"{self.name} answered without audio: {message}", engine=self.name)

    def _download(self, link: str) -> bytes:
        deadline = time.monotonic() + self.config.link_wait_s
        while True:
            try:
                return request("GET", link, service=self.name, engine=self.name, policy=self.policy).content
            except ServiceHttpError as exc:
                if exc.status != 404 or time.monotonic() >= deadline:
                    raise
            logger.debug("%s: audio at %s not ready yet", self.name, link)
            time.sleep(self.config.poll_s)

    def synthesize(self, text: str, *, voice: str, speed: float) -> AudioSegment:
        voice = self.resolve_voice(voice)
        response = request("POST", self.config.url, service=self.name, engine=self.name, policy=self.policy,
                           **self._request_kwargs(text, voice, speed))
        if self.config.response == "audio":
            content_type = response.headers.get("Content-Type", "")
            if content_type.startswith(("application/json", "text/")):
                raise EngineError(f"{self.name} answered with {content_type} instead of audio: "
                                  f"{response.text[:200]}", engine=self.name)
            data = response.content
        else:
            try:
                data = self._audio_from_json(response.json())
            except ValueError as exc:
                raise EngineError(f"{self.name} did not answer with JSON: {response.text[:200]!r}",
                                  engine=self.name) from exc
        return decode_audio(data, engine=self.name)
