"""Subscriptions that must hold, for every client of the system (units and the controller alike):
what to do when a broker refuses one (docs/protocol.md §1 "Several brokers")."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from devices.failover import UNIT_BACKOFF

if TYPE_CHECKING:
    from devices.mqtt import AsyncMqttClient

logger = logging.getLogger(__name__)
_rng = random.Random()


#: refused subscriptions retried this many times on one connection before leaving that broker
SUBSCRIBE_TRIES = 4


def insist(link: AsyncMqttClient, topics: list[str], fut: asyncio.Future[list[int]] | None, what: str, *,
           on_granted: Callable[[], None] | None = None, on_refused: Callable[[], None] | None = None,
           attempt: int = 0) -> None:
    """§1 "Several brokers": a subscription the broker refuses (SUBACK 0x80 — a clustered broker
    that could not create what backs it, e.g. a NATS node while its JetStream elects new leaders
    after a node died) is not left missing, or a unit would miss every command on it: the refused
    topics are subscribed again on the same connection after the backoff wait (0.25–0.5 s, then
    doubling); after :data:`SUBSCRIBE_TRIES` refusals the unit leaves that broker cleanly
    (DISCONNECT) for the next one of its ring. ``on_granted`` runs once every topic is granted,
    ``on_refused`` at each refusal (a unit then publishes its birth again once all it asked for is
    granted: firmware_sim/membership.py)."""
    if fut is None:
        return
    connection = link.stats.connects

    def done(f: asyncio.Future[list[int]]) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # the connection went meanwhile: the next one subscribes again anyway
        refused = [t for t, code in zip(topics, f.result(), strict=False) if code >= 0x80]
        if not refused:
            if on_granted is not None:
                on_granted()
            return
        if on_refused is not None:
            on_refused()
        if attempt + 1 >= SUBSCRIBE_TRIES:
            link.reconnect(f"the broker refused the subscription to {what} {SUBSCRIBE_TRIES} times")
            return
        wait = UNIT_BACKOFF.wait(attempt, _rng)
        logger.warning("%s: the broker refused the subscription to %s; again in %.1f s", link.client_id, what,
                       wait)
        asyncio.get_running_loop().call_later(wait, again, refused)

    def again(refused: list[str]) -> None:
        if link.is_connected and link.stats.connects == connection:  # still the same connection
            insist(link, refused, link.subscribe(refused), what, on_granted=on_granted, on_refused=on_refused,
                   attempt=attempt + 1)

    fut.add_done_callback(done)


class Reachable:
    """§1 "Several brokers" 5.: once every subscription asked for on a connection on which the
    broker refused some is granted, ``on_reachable`` runs (the unit publishes its birth again: the
    controller then offers it what it missed). One per client; :meth:`connected` at every connect."""

    def __init__(self, on_reachable: Callable[[], None]) -> None:
        self._on_reachable = on_reachable
        self._waiting: set[str] = set()
        self._refused = False

    def connected(self) -> None:
        self._waiting.clear()
        self._refused = False

    def forget(self, what: str) -> None:
        """``what`` is no longer wanted (unsubscribed): not waited for."""
        self._waiting.discard(what)

    def insist(self, link: AsyncMqttClient, topics: list[str], fut: asyncio.Future[list[int]] | None,
               what: str, *, on_granted: Callable[[], None] | None = None) -> None:
        """:func:`insist` on ``topics``, followed here."""
        self._waiting.add(what)

        def granted() -> None:
            if on_granted is not None:
                on_granted()
            self._waiting.discard(what)
            if self._refused and not self._waiting:
                self._refused = False
                self._on_reachable()

        insist(link, topics, fut, what, on_granted=granted, on_refused=self._refusal)

    def _refusal(self) -> None:
        self._refused = True
