"""Which addresses a relay (tiếp sóng) may fetch: only public ones, unless the admin allow-listed
the station (``relay.allowed_stations``) — no SSRF through relay URLs (issue 11 item 9).

* Whether an address is public, hosts written as numbers (``0x7f000001``, ``127.1``, ...) and
  resolution are devices/netguard.py's (:func:`classify`, :func:`numeric_host`, :func:`resolve`,
  re-exported here), shared with the units' own rule for what they fetch.
* :class:`Guard` decides for a (host, port): an allow-listed origin passes as it is; any other
  host is resolved once and every address it resolves to must be public. The caller connects
  to the addresses it returns (controller/core/netguard_http.py), so DNS cannot change between the
  check and the connection.

The precise reason is for the controller's log; users see only :data:`UNREACHABLE`, the same
for a refused address, a closed port, a timeout or a DNS failure (no port scanner).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx

from devices.netguard import DEFAULT_PORTS, IP, classify, numeric_host, resolve

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PORTS", "IP", "UNREACHABLE", "Blocked", "Guard", "classify", "normalize_station",
           "numeric_host", "origin", "resolve"]

UNREACHABLE = "the station could not be reached"


class Blocked(Exception):
    """The station's address is not public and the station is not allow-listed."""


def origin(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL as httpx reads it (IDNA, lower-case, no brackets), the port
    explicit. A backslash is refused: URL parsers disagree on it (a unit might read another host)."""
    if "\\" in url:
        raise ValueError(f"a backslash in a URL: {url!r}")
    try:
        u = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"not a valid URL: {url!r}") from exc
    if u.scheme not in DEFAULT_PORTS or not u.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return u.host.rstrip("."), u.port or DEFAULT_PORTS[u.scheme]


def normalize_station(text: str) -> str:
    """An allow-list entry as ``scheme://host:port`` (refuses paths, queries, user info)."""
    u = urlsplit(text.strip())
    host, port = origin(text)
    if u.path not in ("", "/") or u.query or u.fragment or u.username or u.password:
        raise ValueError(f"a station is an origin (scheme://host[:port]) without path or user: {text!r}")
    return f"{u.scheme}://[{host}]:{port}" if ":" in host else f"{u.scheme}://{host}:{port}"


class Guard:
    """The relay's address policy: allow-listed origins, else public addresses only."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = {origin(normalize_station(a)) for a in allowed}

    def is_allowed(self, host: str, port: int) -> bool:
        return (host.lower().strip("[]").rstrip("."), port) in self.allowed

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for (host, port), each one checked; raises :class:`Blocked`
        (a non-public address) or OSError (DNS failure). An allow-listed origin is returned as is
        (connected to by name)."""
        if self.is_allowed(host, port):
            return [host.strip("[]")]
        ips = resolve(host.strip("[]"), port)
        bad = [(ip, why) for ip in ips if (why := classify(ip))]
        if bad:
            ip, why = bad[0]
            logger.warning("relay: %s:%d refused: it resolves to %s, %s (not allow-listed in "
                           "relay.allowed_stations)", host, port, ip, why)
            raise Blocked(f"{host}:{port} is {why} ({ip})")
        return [str(ip) for ip in ips]

    def check_url(self, url: str) -> None:
        """Raise :class:`Blocked` / OSError / ValueError unless ``url`` may be fetched (blocking DNS)."""
        self.addresses(*origin(url))

    async def acheck_url(self, url: str) -> None:
        await asyncio.to_thread(self.check_url, url)

    def problem(self, url: str) -> str:
        """'' if ``url`` may be fetched, else :data:`UNREACHABLE` (the reason goes to the log)."""
        try:
            self.check_url(url)
        except Blocked:
            return UNREACHABLE
        except (OSError, ValueError, UnicodeError) as exc:
            logger.warning("relay: %s cannot be checked: %s", url, exc)
            return UNREACHABLE
        return ""

    async def aproblem(self, url: str) -> str:
        return await asyncio.to_thread(self.problem, url)
