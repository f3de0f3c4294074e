"""Failed-login backoff: slow the guesser, lock nobody out; bounded memory; throttled audit.

* Per (user name, client address): ``free_failures`` failures cost nothing, then each further
  attempt must wait ``base_delay_s`` × 2^k (at most ``max_delay_s``); an attempt during the wait
  is answered 429 with ``Retry-After`` and not checked at all (a right password then would tell
  the guesser it is right). Another address, and the user's existing sessions, are unaffected.
* Per address: a leaky bucket of ``address_limit`` failures per ``window_s`` over all user names
  (password spraying); users who have logged in from that address before are exempt, so a
  guesser behind a ward office's NAT does not lock out the office.
* Failed logins are audited one by one only within per-address and global budgets; the ones
  over budget are counted and the count goes into the next row written.
* An IPv6 client counts as its /64 network (one subscriber's privacy addresses are one client).
* Every table is bounded (``max_entries``, least recently touched dropped first) and entries
  expire after ``window_s`` of silence; a request that is only checked creates nothing.
* Several controllers behind one proxy count together: each failure and success is told to the
  others through the change feed (kind :data:`LOGIN`, :func:`shared_key`), which apply it with
  :meth:`LoginLimiter.apply_shared`; a guesser spreading attempts over them gains at most what
  arrives within one writer batch (~0.2 s).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock
from typing import TypeVar

from controller.core.web_settings import LoginSettings

_KEY_CHARS = 100  # user names are at most 100 characters; a longer one names nobody
LOGIN = "login"  # the change feed's kind (ephemeral): a failure or success elsewhere, shared_key()
_KNOWN_TTL_S = 30 * 86400.0
V = TypeVar("V")


@dataclass
class _Pair:
    fails: int
    last: float


@dataclass
class _Bucket:
    """A leaky bucket: ``level`` units, draining at ``rate`` per second since ``at``."""

    level: float = 0.0
    at: float = 0.0

    def peek(self, now: float, rate: float) -> float:
        return max(0.0, self.level - (now - self.at) * rate)

    def drain(self, now: float, rate: float) -> float:
        self.level, self.at = self.peek(now, rate), now
        return self.level


@dataclass
class _Address:
    last: float
    failures: _Bucket
    audits: _Bucket
    unaudited: int = 0


def _client_key(client: str) -> str:
    """The address a client is counted as: itself, or its /64 network for IPv6."""
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return client[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class _Table(OrderedDict[tuple[str, str] | str, V]):
    """An LRU-bounded dict."""

    def __init__(self, bound: int) -> None:
        super().__init__()
        self.bound = bound

    def touch(self, key: tuple[str, str] | str, value: V) -> V:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.bound:
            self.popitem(last=False)
        return value


class LoginLimiter:
    def __init__(self, cfg: LoginSettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg or LoginSettings()  # type: ignore[call-arg]
        self._clock = clock
        self._lock = Lock()  # called from the thread pool (sync routes and dependencies)
        n = self.cfg.max_entries
        self._pairs: _Table[_Pair] = _Table(n)
        self._addrs: _Table[_Address] = _Table(n)
        self._known: _Table[float] = _Table(n)
        self._global = _Bucket()
        self.unaudited_total = 0  # failures over the audit budgets (kept for the next row)

    # ------------------------------------------------------------------ queries

    def retry_after(self, username: str, client: str) -> float:
        """Seconds before ``username`` may try again from ``client`` (0: now). Creates nothing."""
        c, now, client = self.cfg, self._clock(), _client_key(client)
        key = (username[:_KEY_CHARS], client)
        with self._lock:
            wait = 0.0
            pair = self._pairs.get(key)
            if pair is not None and now - pair.last <= c.window_s and pair.fails >= c.free_failures:
                wait = pair.last + self._delay(pair.fails) - now
            addr = self._addrs.get(client)
            if addr is not None and not self._is_known(key, now):
                rate = c.address_limit / c.window_s
                over = addr.failures.peek(now, rate) - (c.address_limit - 1)
                if over > 0:
                    wait = max(wait, over / rate)
            return max(0.0, wait)

    def __len__(self) -> int:
        """Entries held (all tables): bounded by 3 × ``max_entries``."""
        return len(self._pairs) + len(self._addrs) + len(self._known)

    # ------------------------------------------------------------------ updates

    def failed(self, username: str, client: str, *, elsewhere: bool = False) -> str | None:
        """Count a failure; return the detail for its audit row, or None when over budget (or
        ``elsewhere``: another controller saw it and audits it; the budgets stay untouched)."""
        c, now, seen = self.cfg, self._clock(), client
        client = _client_key(client)
        key = (username[:_KEY_CHARS], client)
        with self._lock:
            self._expire(now)
            pair = self._pairs.get(key)
            fails = pair.fails + 1 if pair is not None and now - pair.last <= c.window_s else 1
            self._pairs.touch(key, _Pair(fails, now))
            addr = self._addrs.get(client) or _Address(now, _Bucket(at=now), _Bucket(at=now))
            addr.last = now
            self._addrs.touch(client, addr)
            rate = c.address_limit / c.window_s
            addr.failures.level = addr.failures.drain(now, rate) + 1
            if elsewhere:
                return None
            a_rate, g_rate = c.audit_per_address / c.window_s, c.audit_total / c.window_s
            if (addr.audits.drain(now, a_rate) + 1 > c.audit_per_address
                    or self._global.drain(now, g_rate) + 1 > c.audit_total):
                addr.unaudited += 1
                self.unaudited_total += 1
                return None
            addr.audits.level += 1
            self._global.level += 1
            detail = seen
            if addr.unaudited:
                detail += f" (+{addr.unaudited} earlier failures from this address not logged one by one)"
                self.unaudited_total -= addr.unaudited
                addr.unaudited = 0
            return detail

    def succeeded(self, username: str, client: str) -> bool:
        """Forget the pair's failures, remember the pair as known; True if that changed anything
        worth telling the other controllers (failures dropped, or a pair not known for a day)."""
        key, now = (username[:_KEY_CHARS], _client_key(client)), self._clock()
        with self._lock:
            had = self._pairs.pop(key, None) is not None
            seen = self._known.get(key)
            self._known.touch(key, now)
        return had or seen is None or now - seen > 86400.0

    def apply_shared(self, keys: frozenset[str] | None) -> None:
        """Failures and successes another controller saw (:func:`shared_key`), in their order."""
        events = []
        for key in keys or ():
            try:
                at, _, ok, username, client = json.loads(key)
                events.append((float(at), bool(ok), str(username), str(client)))
            except (ValueError, TypeError):
                continue
        for _, ok, username, client in sorted(events):
            if ok:
                self.succeeded(username, client)
            else:
                self.failed(username, client, elsewhere=True)

    # ------------------------------------------------------------------ internals

    def _delay(self, fails: int) -> float:
        c = self.cfg
        step = min(fails - c.free_failures, 30)  # 2**30 × anything ≥ max_delay_s
        return float(min(c.base_delay_s * 2 ** step, c.max_delay_s))

    def _is_known(self, key: tuple[str, str], now: float) -> bool:
        at = self._known.get(key)
        return at is not None and now - at <= _KNOWN_TTL_S

    def _expire(self, now: float) -> None:
        """Drop entries silent for a window (oldest first: the tables are in touch order)."""
        w = self.cfg.window_s
        while self._pairs and now - next(iter(self._pairs.values())).last > w:
            self._pairs.popitem(last=False)
        while self._addrs and now - next(iter(self._addrs.values())).last > w:
            self._addrs.popitem(last=False)
        while self._known and now - next(iter(self._known.values())) > _KNOWN_TTL_S:
            self._known.popitem(last=False)


def shared_key(ok: bool, username: str, client: str) -> str:
    """One login outcome as the change feed carries it (unique, ordered by its time)."""
    return json.dumps([round(time.time(), 3), secrets.token_hex(3), ok, username[:_KEY_CHARS],
                       _client_key(client)[:50]], separators=(",", ":"), ensure_ascii=False)
