"""Settings of the web front: login backoff, request size limits, trusted reverse proxies.

Part of :class:`controller.settings.Settings` (``LOAPHUONG_LOGIN__...``, ``LOAPHUONG_HTTP__...``);
kept here so the main settings file stays short. See docs/ui.md (Security).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class LoginSettings(BaseModel):
    """Failed logins slow the guesser down (per user name and address), they lock nobody out."""

    model_config = ConfigDict(extra="forbid")
    free_failures: int = Field(5, ge=1, le=100,
                               description="failed logins per (user name, address) before the backoff starts")
    base_delay_s: float = Field(30.0, gt=0, le=3600,
                                description="wait after the first failure beyond free_failures; doubles "
                                            "with each further failure")
    max_delay_s: float = Field(900.0, gt=0, le=24 * 3600, description="longest wait between two attempts")
    window_s: float = Field(3600.0, gt=0, le=7 * 24 * 3600,
                            description="a (user name, address) silent this long starts afresh; also the "
                                        "period of the per-address ceiling and of the audit budgets")
    address_limit: int = Field(200, ge=1, le=100_000,
                               description="failed logins per window from one address (all user names) "
                                           "before that address must wait; users who logged in from "
                                           "that address before are exempt")
    audit_per_address: int = Field(30, ge=1, le=100_000,
                                   description="failed logins per window from one address written to the "
                                               "audit log one by one; the rest are counted in the next row")
    audit_total: int = Field(600, ge=1, le=1_000_000,
                             description="failed logins per window written to the audit log one by one, "
                                         "all addresses together")
    max_entries: int = Field(10_000, ge=2, le=1_000_000,
                             description="bound of each table the limiter keeps (oldest dropped first)")

    @model_validator(mode="after")
    def _window_covers_delay(self) -> LoginSettings:
        if self.max_delay_s > self.window_s:
            raise ValueError("max_delay_s must not exceed window_s")
        return self


class HttpSettings(BaseModel):
    """How much a request may send, and whom to believe about the client's address."""

    model_config = ConfigDict(extra="forbid")
    max_body_kb: int = Field(1024, ge=1, le=1024 * 1024,
                             description="largest request body (KiB) except the recorded-audio upload "
                                         "(tts.upload_max_mb); larger ones get 413 before being read")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed "
                    "(e.g. [\"127.0.0.1\"] behind a local nginx); default none: the socket's peer is the "
                    "client")
    request_deadline_s: float = Field(10.0, gt=0, le=600,
                                      description="a request whose response has not started this long "
                                                  "after it came is answered 503 (docs/faults.md)")
    long_deadline_s: float = Field(300.0, gt=0, le=3600,
                                   description="the same for the writes that render speech (POST/PATCH "
                                               "/api/bulletins..., /api/speech/...: a long text through gTTS "
                                               "takes minutes) or wait for units (commands, up to 120 s)")


class MetricsSettings(BaseModel):
    """Who may read ``GET /metrics`` (the Prometheus format; docs/deploy.md "Monitoring")."""

    model_config = ConfigDict(extra="forbid")
    token: SecretStr | None = Field(
        None, description="bearer token the Prometheus server sends (Authorization: Bearer ...); when set "
                          "it is required from every client. Unset (default): only requests from this "
                          "machine (loopback) that no proxy forwarded are answered")

    @model_validator(mode="after")
    def _long_token(self) -> MetricsSettings:
        if self.token is not None and len(self.token.get_secret_value()) < 16:
            raise ValueError("metrics.token must be at least 16 characters")
        return self


def uvicorn_proxy_options(http: HttpSettings) -> dict[str, Any]:
    """uvicorn.Config keywords: forwarded headers only from the configured proxies.

    uvicorn's own default trusts them from 127.0.0.1 (and its ``FORWARDED_ALLOW_IPS``
    environment variable), which lets anyone reaching the port through a local process forge
    their address."""
    if not http.trusted_proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": list(http.trusted_proxies)}
