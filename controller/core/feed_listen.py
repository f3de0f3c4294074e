"""The change feed's PostgreSQL side: one dedicated connection that LISTENs, and reconnects.

It is not a pooled connection (a pool would hand it to a request and drop the LISTEN); it runs
in autocommit on the event loop (psycopg's async connection) and hands each payload to the
feed. Every ``check_s`` without a notification it runs ``SELECT 1`` on it, so a link that died
without a word (a partition) is noticed then, or by the TCP keepalives, whichever is first.
A connection ended by the server (``pg_terminate_backend``, a restart) is noticed at once.
After each (re)connect ``on_up`` is called: the feed polls its log then, so whatever was
notified while nobody listened is caught up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

try:  # the "postgres" extra: a SQLite-only install has no psycopg, and never listens
    import psycopg
except ImportError:  # pragma: no cover - PostgreSQL needs psycopg for SQLAlchemy too
    psycopg = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

MAX_RETRY_S = 5.0


class PgListener:
    def __init__(self, conninfo: str, channel: str, on_payload: Callable[[str], None],
                 on_up: Callable[[], None], *, retry_s: float = 0.5, check_s: float = 10.0,
                 connect_s: float = 3.0) -> None:
        if not channel.isidentifier():
            raise ValueError(f"channel {channel!r} is not a plain identifier")
        self.conninfo = conninfo
        self.channel = channel
        self._on_payload = on_payload
        self._on_up = on_up
        self.retry_s = retry_s
        self.check_s = check_s
        self.connect_s = connect_s
        self.listening = False
        self.connects = 0  # successful LISTENs (1 + reconnects)
        self.losses = 0  # times the connection was lost or could not be made
        self.last_error = ""
        self.pid: int | None = None  # the server process of the listening connection

    async def run(self) -> None:
        """Listen until cancelled; after a loss, try again after retry_s, doubling up to 5 s."""
        delay = self.retry_s
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - psycopg.Error, OSError: logged, retried
                self.losses += 1
                self.last_error = str(exc).strip()[:300]
                if self.listening or self.losses == 1:
                    logger.warning("change feed: the LISTEN connection is lost (%s); reconnecting",
                                   self.last_error)
            finally:
                was, self.listening, self.pid = self.listening, False, None
            delay = self.retry_s if was else min(delay * 2, MAX_RETRY_S)
            await asyncio.sleep(delay)

    async def _listen(self) -> None:
        if psycopg is None:
            raise RuntimeError("psycopg is not installed (pip install 'loaphuong[postgres]')")
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, connect_timeout=max(1, int(self.connect_s)),
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
            tcp_user_timeout=10_000)  # the SELECT 1 of a dead route gives up after 10 s
        async with conn:
            await conn.execute(f"LISTEN {self.channel}")
            self.pid = conn.info.backend_pid
            self.connects += 1
            self.listening = True
            if self.connects > 1:
                logger.info("change feed: listening again (connection %d)", self.connects)
            self._on_up()
            while True:
                async for note in conn.notifies(timeout=self.check_s):
                    self._on_payload(note.payload)
                await conn.execute("SELECT 1")  # quiet for check_s: is the link still there?
