"""Which addresses a relay (tiếp sóng) may fetch: only public ones, unless the admin allow-listed
the station (``relay.allowed_stations``) — no SSRF through relay URLs (issue 11 item 9).

* :func:`classify` says why an IP address is not public (loopback, private, link-local, CGNAT,
  multicast, unspecified, documentation, reserved, an IPv4 address embedded in IPv6 that is
  one of those, ...) or ``""`` for a public one. Pure.
* :func:`numeric_host` reads a host written as a number the way the C resolver does
  (``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``127.1``, ``[::ffff:127.0.0.1]``) without
  any network access.
* :class:`Guard` decides for a (host, port): an allow-listed origin passes as it is; any other
  host is resolved once and every address it resolves to must be public. The caller connects
  to the addresses it returns (controller/netguard_http.py), so DNS cannot change between the
  check and the connection.

The precise reason is for the controller's log; users see only :data:`UNREACHABLE`, the same
for a refused address, a closed port, a timeout or a DNS failure (no port scanner).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx

logger = logging.getLogger(__name__)

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

UNREACHABLE = "the station could not be reached"
DEFAULT_PORTS = {"http": 80, "https": 443}

_V4: list[tuple[str, str]] = [
    ("0.0.0.0/8", "unspecified ('this network')"), ("10.0.0.0/8", "private"), ("100.64.0.0/10", "CGNAT"),
    ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"), ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"), ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay"), ("192.168.0.0/16", "private"), ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"), ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
]
_V6: list[tuple[str, str]] = [
    ("::/128", "unspecified"), ("::1/128", "loopback"), ("::/96", "IPv4-compatible"),
    ("64:ff9b:1::/48", "local NAT64"), ("100::/64", "discard"), ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"), ("fc00::/7", "unique local (private)"), ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"), ("ff00::/8", "multicast"),
]
_NETS = [(ipaddress.ip_network(n), why) for n, why in _V4 + _V6]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HEX = set("0123456789abcdefABCDEF")
_6TO4 = ipaddress.ip_network("2002::/16")


class Blocked(Exception):
    """The station's address is not public and the station is not allow-listed."""


def classify(ip: IP) -> str:
    """Why ``ip`` is not a public address, or ``""`` if it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if inner is None and ip in _6TO4:
            inner = ip.sixtofour
        if inner is not None:
            why = classify(inner)
            return f"{why} (IPv4 {inner} inside IPv6)" if why else ""
    for net, why in _NETS:
        if ip.version == net.version and ip in net:
            return why
    return "" if ip.is_global else "not globally routable"


def _ipv4_part(text: str) -> int | None:
    if text[:2].lower() == "0x":
        digits = text[2:]
        return int(digits, 16) if digits and all(c in _HEX for c in digits) else None
    if not text.isascii() or not text.isdigit():
        return None
    if len(text) > 1 and text.startswith("0"):
        return int(text[1:], 8) if all(c in "01234567" for c in text) else None
    return int(text, 10)


def numeric_host(host: str) -> IP | None:
    """The address a host written as a number stands for (as inet_aton / getaddrinfo read it:
    1 to 4 parts, each decimal, 0x hex or 0 octal, the last filling the remaining bytes; or an
    IPv6 literal), else None (a name)."""
    h = host.strip("[]").rstrip(".") if host else ""
    if ":" in h:
        try:
            return ipaddress.IPv6Address(h.split("%", 1)[0])
        except ValueError:
            return None
    parts = h.split(".")
    if not h or len(parts) > 4:
        return None
    nums = [_ipv4_part(x) for x in parts]
    if any(n is None for n in nums):
        return None
    vals = [n for n in nums if n is not None]
    *head, last = vals
    if any(v > 255 for v in head) or last >= 1 << (8 * (5 - len(vals))):
        return None
    value = 0
    for v in head:
        value = value << 8 | v
    return ipaddress.IPv4Address(value << (8 * (5 - len(vals))) | last)


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


def resolve(host: str, port: int) -> list[IP]:
    """Every address ``host`` stands for (a number: itself, no DNS; a name: getaddrinfo)."""
    ip = numeric_host(host)
    if ip is not None:
        return [ip]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IP] = []
    for *_, sockaddr in infos:
        addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if addr not in out:
            out.append(addr)
    if not out:
        raise OSError(f"{host} has no address")
    return out


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
