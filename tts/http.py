"""HTTP for online speech services: timeouts, retry with backoff, clear errors.

Retried: connection failures, timeouts, HTTP 429 and 5xx (honouring ``Retry-After``,
capped). Not retried: other 4xx (a wrong key or request will not get better). Every
failure ends as an :class:`EngineError` saying which service, what happened and what to do.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from tts.errors import EngineError

__all__ = ["RETRY_STATUSES", "RetryPolicy", "ServiceHttpError", "request"]

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class ServiceHttpError(EngineError):
    """The service answered with an HTTP error status."""

    def __init__(self, message: str, *, engine: str, status: int) -> None:
        super().__init__(message, engine=engine)
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` extra attempts after the first, sleeping ``backoff_s * 2**n`` (≤ ``max_backoff_s``)."""

    timeout_s: float = 15.0
    retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 20.0

    def delay(self, attempt: int, response: requests.Response | None) -> float:
        wait = self.backoff_s * (2**attempt)
        header = response.headers.get("Retry-After") if response is not None else None
        if header is not None:
            try:
                wait = max(wait, float(header))
            except ValueError:
                pass  # an HTTP date: keep our own backoff
        return min(wait, self.max_backoff_s)


def _snippet(response: requests.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:200] + ("…" if len(text) > 200 else "")


def request(method: str, url: str, *, service: str, engine: str, policy: RetryPolicy,
            session: requests.Session | None = None, **kwargs: Any) -> requests.Response:
    """Send one request with retries; return the 2xx response or raise :class:`EngineError`."""
    host = urlsplit(url).netloc or url
    attempts = policy.retries + 1
    last: str = ""
    http = session or requests.Session()
    try:
        for attempt in range(attempts):
            response: requests.Response | None = None
            try:
                response = http.request(method, url, timeout=policy.timeout_s, **kwargs)
            except requests.ConnectionError as exc:
                last = f"cannot connect ({type(exc).__name__})"
                if attempt + 1 == attempts:
                    raise EngineError(
                        f"Cannot reach {service} at {host} after {attempts} attempts ({last}). Check the "
                        "internet connection or proxy, or use the offline espeak-ng voice.", engine=engine,
                    ) from exc
            except requests.Timeout as exc:
                last = f"no answer within {policy.timeout_s:g} s"
                if attempt + 1 == attempts:
                    raise EngineError(
                        f"{service} at {host} did not answer within {policy.timeout_s:g} s "
                        f"({attempts} attempts). The service is slow or down; try again later.",
                        engine=engine,
                    ) from exc
            except requests.RequestException as exc:
                raise EngineError(f"Request to {service} at {host} failed: {exc}", engine=engine) from exc
            else:
                if response.ok:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise ServiceHttpError(
                        f"{service} refused the request: HTTP {response.status_code} {_snippet(response)}. "
                        "Check the engine's configuration (address, key, voice).", engine=engine,
                        status=response.status_code,
                    )
                last = f"HTTP {response.status_code}"
                if attempt + 1 == attempts:
                    what = ("is rate-limiting us (HTTP 429)" if response.status_code == 429
                            else f"keeps failing (HTTP {response.status_code})")
                    raise ServiceHttpError(
                        f"{service} {what} after {attempts} attempts; wait a few minutes and try again.",
                        engine=engine, status=response.status_code,
                    )
            wait = policy.delay(attempt, response)
            logger.warning("%s: %s; retrying in %.2f s (attempt %d of %d)", service, last, wait, attempt + 2,
                           attempts)
            time.sleep(wait)
    finally:
        if session is None:
            http.close()
    raise EngineError(f"{service} failed: {last}", engine=engine)  # pragma: no cover (loop always returns)
