"""The relay's address policy (controller/core/netguard.py) without a broker or a server: which
addresses are public, how hosts written as numbers are read, the allow-list, and that the guarded
client never opens a socket to a refused address (issue 11 item 9)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from controller.core import netguard
from controller.core.netguard import UNREACHABLE, Blocked, Guard, classify, numeric_host
from controller.core.netguard_http import GuardedBackend, client

INTERNAL = [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "100.64.0.1", "100.127.255.255", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250",
    "240.0.0.1", "255.255.255.255", "192.0.0.8", "192.0.2.1", "198.18.0.1", "198.51.100.7", "203.0.113.9",
    "::", "::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "::127.0.0.1",
    "fe80::1", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "2001:db8::1", "64:ff9b::7f00:1",
    "64:ff9b::a00:1", "64:ff9b:1::1", "2002:7f00:1::1", "2002:c0a8:101::1", "100::1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "14.225.0.1", "203.162.4.191", "100.63.255.255", "100.128.0.1",
          "172.32.0.1", "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808",
          "2002:808:808::1"]


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any name lookup fails the test (literal addresses need none)."""
    asked: list[str] = []

    def refuse(host: Any, *a: Any, **kw: Any) -> Any:
        asked.append(str(host))
        raise AssertionError(f"DNS lookup of {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield asked


@pytest.mark.parametrize("addr", INTERNAL)
def test_internal_addresses_are_not_public(addr: str) -> None:
    assert classify(ipaddress.ip_address(addr)) != ""


@pytest.mark.parametrize("addr", PUBLIC)
def test_public_addresses_are_public(addr: str) -> None:
    assert classify(ipaddress.ip_address(addr)) == ""


@pytest.mark.parametrize(("host", "ip"), [
    ("0x7f000001", "127.0.0.1"), ("0X7F000001", "127.0.0.1"), ("2130706433", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"), ("0177.0.0.01", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("0x7f.0x0.0x0.0x1", "127.0.0.1"), ("017700000001", "127.0.0.1"), ("10.1", "10.0.0.1"),
    ("0", "0.0.0.0"), ("0xa9fea9fe", "169.254.169.254"), ("2852039166", "169.254.169.254"),
    ("127.0.0.1.", "127.0.0.1"), ("[::1]", "::1"), ("::ffff:127.0.0.1", "::ffff:7f00:1"),
    ("[::ffff:7f00:1]", "::ffff:7f00:1"), ("fe80::1%25eth0", "fe80::1"), ("8.8.8.8", "8.8.8.8"),
    ("134744072", "8.8.8.8"),
])
def test_hosts_written_as_numbers_are_read_as_the_resolver_does(host: str, ip: str,
                                                                no_dns: list[str]) -> None:
    assert numeric_host(host) == ipaddress.ip_address(ip)
    if not ip.startswith("8."):
        with pytest.raises(Blocked):
            Guard().addresses(host, 80)
    assert not no_dns


@pytest.mark.parametrize("host", ["radio.example", "vov.vn", "0x", "1.2.3.4.5", "256.1.1.1", "08.1.1.1",
                                  "4294967296", "1.2.65536", "a.0x7f000001", "", "0x-1", "0x7_f",
                                  "١٢٧.0.0.1"])
def test_names_are_not_numbers(host: str) -> None:
    assert numeric_host(host) is None


def test_public_literals_pass_without_any_lookup(no_dns: list[str]) -> None:
    g = Guard()
    for addr in ("8.8.8.8", "[2606:4700:4700::1111]", "0x08080808"):
        g.check_url(f"http://{addr}:8000/radio.mp3")
    assert g.problem("https://1.1.1.1/live.m3u8") == ""
    assert not no_dns


def test_names_are_resolved_and_every_address_must_be_public(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"radio.vn": ["14.225.0.1"], "both.vn": ["14.225.0.1", "10.0.0.5"],
               "inside.vn": ["192.168.0.2"], "v6.vn": ["::1"]}

    def fake(host: str, port: Any, *a: Any, **kw: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(-2, "Name or service not known")
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                for ip in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    g = Guard()
    assert g.addresses("radio.vn", 80) == ["14.225.0.1"]
    for host in ("both.vn", "inside.vn", "v6.vn", "localhost.vn"):
        assert g.problem(f"http://{host}/x.mp3") == UNREACHABLE, host  # one text: blocked or no answer
    with pytest.raises(Blocked):
        g.addresses("both.vn", 80)
    with pytest.raises(OSError):
        g.addresses("nope.vn", 80)


def test_allow_list_is_exact_origins(no_dns: list[str]) -> None:
    g = Guard(["http://127.0.0.1:8000", "https://Radio.Local", "http://[::1]:9000/"])
    assert g.addresses("127.0.0.1", 8000) == ["127.0.0.1"]
    assert g.problem("http://127.0.0.1:8000/radio.mp3") == ""
    assert g.problem("https://radio.local/live.m3u8") == ""  # port 443 by default, case-insensitive
    assert g.problem("http://[::1]:9000/a.mp3") == ""
    for url in ("http://127.0.0.1:8001/", "http://0x7f000001:8000/", "http://2130706433:8000/",
                "http://[::ffff:127.0.0.1]:8000/", "http://127.1:8000/", "http://[::1]:9001/"):
        assert g.problem(url) == UNREACHABLE, url
    with pytest.raises(Blocked):
        g.addresses("127.0.0.1", 8001)
    assert not no_dns


@pytest.mark.parametrize("bad", ["http://127.0.0.1:8000/radio.mp3", "ftp://x", "http://u:p@10.0.0.1",
                                 "127.0.0.1:8000", "http://x/?a=1"])
def test_allow_list_entries_are_origins(bad: str) -> None:
    with pytest.raises(ValueError):
        netguard.normalize_station(bad)


def test_settings_normalize_the_allow_list() -> None:
    from controller.relays.settings import RelaySettings

    rs = RelaySettings(allowed_stations=["HTTP://Radio.Local", "http://127.0.0.1:8000/"])
    assert rs.allowed_stations == ["http://radio.local:80", "http://127.0.0.1:8000"]
    with pytest.raises(ValueError):
        RelaySettings(allowed_stations=["http://127.0.0.1:8000/radio.mp3"])


def test_backslash_urls_are_refused(no_dns: list[str]) -> None:
    """Parsers disagree on a backslash in the authority (a unit could read another host)."""
    assert Guard(["http://8.8.8.8"]).problem("http://127.0.0.1:80\\@8.8.8.8/x.mp3") == UNREACHABLE


async def test_the_guarded_client_opens_no_socket_to_a_refused_address(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check sits under httpx: a refused host raises Blocked before any connect is attempted."""
    connects: list[tuple[str, int]] = []

    async def spy(self: Any, host: str, port: int, *a: Any, **kw: Any) -> Any:
        connects.append((host, port))
        raise AssertionError("connected")

    monkeypatch.setattr(type(GuardedBackend(Guard())._inner), "connect_tcp", spy)
    async with client(Guard(), timeout=httpx.Timeout(2.0), user_agent="t") as c:
        for url in ("http://127.0.0.1:1/", "http://0x7f000001:1/", "http://[::1]:1/", "http://169.254.169.254/"):
            with pytest.raises(Blocked):
                await c.get(url)
    assert connects == []


async def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name is resolved once; the socket is opened to that checked address,
    never by name again (a second lookup here would answer 127.0.0.1)."""
    import httpcore
    from httpcore._backends.auto import AutoBackend

    answers = iter([["14.225.0.1"], ["127.0.0.1"]])

    def resolver(host: str, port: Any, *a: Any, **kw: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in next(answers)]

    seen: list[str] = []

    async def spy(self: Any, host: str, port: int, *a: Any, **kw: Any) -> Any:
        seen.append(host)
        raise httpcore.ConnectError("not really connecting")

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setattr(AutoBackend, "connect_tcp", spy)
    with pytest.raises(httpcore.ConnectError):
        await GuardedBackend(Guard()).connect_tcp("radio.vn", 80, timeout=2.0)
    assert seen == ["14.225.0.1"]
    assert next(answers) == ["127.0.0.1"]  # the second answer was never asked for
