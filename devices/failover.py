"""Several brokers: which one a client tries next and how long it waits first.

One rule for every MQTT client of the system — the controller's link, simulated units, the
serial gateway, the conformance kit and (the same numbers, in C) real firmware; it is written
out for firmware writers in docs/protocol.md §1 "Several brokers":

* the addresses are a ring; a client starts at position ``crc32(client id) mod n`` (so units
  given one list spread over the nodes of a cluster by themselves) and stays on a broker until
  its connection fails or is lost; then it moves on to the next address of the ring, never back
  to a favourite;
* every wait is ``min(max, first * 2**step) * uniform(0.5, 1.0)``: the first retry after a
  healthy connection is lost is fast (``first``: 0.25–0.5 s by default), each failed attempt or
  connection that dies young (under :data:`STABLE_S` after its CONNACK) doubles it, up to the
  cap; a connection that lasted :data:`STABLE_S` starts the count again from 0;
* :data:`DUPLICATE_FLAPS` connections in a row that die young, closed by the broker (not by this
  client, and with no failed connect in between: a broker that is down is no duplicate), are the
  sign of another client using the same id: reported by the caller, and with ``refuse_duplicate``
  (a controller given its id) the client stops reconnecting rather than go on evicting the other.

What a client does after each CONNACK (birth, subscriptions, retained state) does not depend on
which broker it reached: with clean sessions every connection starts from nothing.
"""

from __future__ import annotations

import argparse
import random
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from devices.mqtt_types import BrokerAddress, Brokers, broker_list

#: A connection that lasted this long (seconds after CONNACK) was healthy.
STABLE_S = 10.0
#: this many connections in a row dying young: another client is probably using our id
DUPLICATE_FLAPS = 3
DEFAULT_PORT = 1883

__all__ = ["DEFAULT_PORT", "DUPLICATE_FLAPS", "STABLE_S", "UNIT_BACKOFF", "Backoff", "BrokerRing",
           "add_broker_option", "brokers_from", "parse_brokers", "with_hosts"]


@dataclass(frozen=True)
class Backoff:
    """Jittered exponential backoff: ``min(max_s, first_s * 2**step)`` times a factor in 0.5–1.0."""

    first_s: float = 0.5
    max_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.max_s:
            raise ValueError("backoff needs 0 < first_s <= max_s")

    def wait(self, step: int, rng: random.Random) -> float:
        return min(self.max_s, self.first_s * 2 ** min(step, 32)) * rng.uniform(0.5, 1.0)


#: A unit's numbers (firmware, simulator, serial gateway): 0.25–0.5 s first, up to 30–60 s.
UNIT_BACKOFF = Backoff(first_s=0.5, max_s=60.0)


def parse_brokers(entries: str | Iterable[str], default_port: int = DEFAULT_PORT) -> list[tuple[str, int]]:
    """``"a:1883,b"`` or ``["a:1883", "b:1884"]`` (each item may itself be a comma list; IPv6 as
    ``[::1]:1883``) → ``[(host, port), ...]``. Raises ValueError on an empty list or a bad port."""
    items = [entries] if isinstance(entries, str) else list(entries)
    out: list[tuple[str, int]] = []
    for item in items:
        for part in (p.strip() for p in item.split(",")):
            if part:
                out.append(_host_port(part, default_port))
    if not out:
        raise ValueError("no broker address given")
    return out


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"broker address {text!r} has no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"broker address {text!r}: the port must be 1..65535")
    return host, int(port_text)


def with_hosts(template: BrokerAddress, hosts: Sequence[tuple[str, int]]) -> list[BrokerAddress]:
    """One address per ``(host, port)``, each with ``template``'s credentials, TLS and keepalive."""
    return [replace(template, host=h, port=p, extra=dict(template.extra)) for h, p in hosts]


class BrokerRing:
    """The addresses a client goes round, the broker it is on and the wait before the next try."""

    def __init__(self, client_id: str, brokers: Brokers, backoff: Backoff, *,
                 rng: random.Random | None = None, refuse_duplicate: bool = False) -> None:
        self.brokers = broker_list(brokers)
        if not self.brokers:
            raise ValueError("no broker address given")
        if len({(b.tls, b.ca_file) for b in self.brokers}) > 1:
            raise ValueError("every broker of one client must use the same TLS settings")
        self.backoff = backoff
        self.index = zlib.crc32(client_id.encode()) % len(self.brokers)
        self.step = 0  # failed attempts and young connections since the last healthy one
        self.flaps = 0  # connections in a row that died young
        self.moves = 0  # times this client went on to another address of the ring
        #: stop for good once a duplicate is suspected (:attr:`refused`) instead of going on evicting
        self.refuse_duplicate = refuse_duplicate
        self._rng = rng or random.Random()

    @property
    def current(self) -> BrokerAddress:
        return self.brokers[self.index]

    def failed(self) -> float:
        """A connect attempt failed (refused, unreachable, no CONNACK): the wait before trying the
        next address."""
        wait = self.backoff.wait(self.step, self._rng)
        self.step += 1
        self.flaps = 0  # a broker that cannot be reached is down, not taken by a client with our id
        self._advance()
        return wait

    def lost(self, lived_s: float, *, ours: bool = False) -> float:
        """The connection was lost ``lived_s`` after its CONNACK: the wait before trying the next
        address. Fast after a healthy connection, doubling while connections keep dying young.
        ``ours``: this client ended it (left a node that refused it something): no flap."""
        if lived_s >= STABLE_S:
            self.step = self.flaps = 0
        elif not ours:
            self.flaps += 1
        wait = self.backoff.wait(self.step, self._rng)
        self.step += 1
        self._advance()
        return wait

    @property
    def duplicate_suspected(self) -> bool:
        return self.flaps >= DUPLICATE_FLAPS

    @property
    def refused(self) -> bool:
        """A duplicate is suspected and this client must not connect with its id again."""
        return self.refuse_duplicate and self.duplicate_suspected

    def _advance(self) -> None:
        if len(self.brokers) > 1:
            self.index = (self.index + 1) % len(self.brokers)
            self.moves += 1

    def __str__(self) -> str:
        return ",".join(f"{b.host}:{b.port}" for b in self.brokers)


def add_broker_option(ap: argparse.ArgumentParser | argparse._ArgumentGroup, flag: str = "--broker") -> None:
    """``--broker HOST[:PORT]``, repeatable or a comma list: the brokers in the order of the ring."""
    ap.add_argument(flag, action="append", default=[], metavar="HOST[:PORT]", dest="brokers",
                    help="a broker of a cluster (repeatable, or a comma list: a,b:1884), tried in turn "
                         "(docs/protocol.md 'Several brokers'); overrides the host/port options")


def brokers_from(listed: Sequence[str], template: BrokerAddress) -> list[BrokerAddress]:
    """The ``--broker`` entries as addresses with ``template``'s login and TLS; none listed: the
    template itself (its single host and port, the old options)."""
    if not listed:
        return [template]
    return with_hosts(template, parse_brokers(listed, default_port=template.port))
