"""Which addresses are public: the one classifier, for the controller's relay guard
(controller/core/netguard.py) and for the units' own fetching (firmware_sim/relay.py; the rule firmware
follows, docs/protocol.md ``play_stream``). No SSRF through relay URLs (issue 11 item 9).

* :func:`classify` says why an IP address is not public (loopback, private, link-local, CGNAT,
  multicast, unspecified, documentation, reserved, an IPv4 address embedded in IPv6 that is
  one of those, ...) or ``""`` for a public one. Pure.
* :func:`numeric_host` reads a host written as a number the way the C resolver does
  (``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``127.1``, ``[::ffff:127.0.0.1]``) without
  any network access. Pure.
* :func:`resolve`: every address a host stands for (a number: itself; a name: getaddrinfo).
* :func:`unit_fetch_refusal`: the node-side rule. A unit fetches the URL the controller sent it
  (the controller checked that origin, or its admin allow-listed it) as it is; any other origin —
  a redirect, an HLS variant or segment elsewhere — only if every address it resolves to is public.

This module is below the controller: devices/ never imports controller/.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[IP]]

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



def is_public(ip: IP) -> bool:
    return not classify(ip)


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


def url_origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL as urllib reads it (host lower-case, no brackets,
    no trailing dot; the port explicit). ValueError for anything else, and for a backslash or a
    control character: URL parsers disagree on them (one might read another host)."""
    if "\\" in url or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise ValueError(f"a backslash, space or control character in a URL: {url!r}")
    u = urlsplit(url)
    scheme, host = u.scheme.lower(), (u.hostname or "").rstrip(".")
    if scheme not in DEFAULT_PORTS or not host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return scheme, host, u.port or DEFAULT_PORTS[scheme]


def unit_fetch_refusal(url: str, sent: str, resolver: Resolver = resolve) -> str:
    """Why a unit relaying ``sent`` (the URL in the controller's ``play_stream``) must not fetch
    ``url`` (``sent`` itself, a redirect's target, an HLS playlist, variant or segment), or ``""``.

    The origin the controller sent passes as it is; another origin must resolve to public
    addresses only (every one of them, and the unit then connects to one of those)."""
    try:
        scheme, host, port = url_origin(url)
        if (scheme, host, port) == url_origin(sent):
            return ""
        ips = resolver(host, port)
    except (ValueError, OSError, UnicodeError) as exc:
        return f"{url[:200]!r} cannot be checked ({exc})"
    for ip in ips:
        if why := classify(ip):
            return f"{host}:{port} is {why} ({ip}), not the station the controller sent"
    return ""
