"""An httpx client whose every connection passes the relay's address policy (controller/core/netguard.py).

The check sits where the socket is opened (an httpcore network backend), so it covers the first
request, every redirect hop and every HLS variant, segment and playlist reload alike, whatever
code path makes the request. The host is resolved once, every address checked, and the socket
is opened to a checked address — never by name again — so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot slip through. TLS still verifies the certificate
and sends SNI for the URL's host name (httpcore takes both from the request, not the socket).
Proxies from the environment are not used (the proxy would make the connection instead).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from httpcore._backends.auto import AutoBackend

from controller.core.netguard import Guard

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
SocketOptions = Iterable[tuple[int, int, int] | tuple[int, int, bytes | bytearray]
                         | tuple[int, int, None, int]]


class GuardedBackend(AsyncNetworkBackend):
    """httpcore's own backend, connecting only to addresses the guard let through."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._inner = AutoBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: SocketOptions | None = None) -> AsyncNetworkStream:
        try:
            addrs = await asyncio.wait_for(asyncio.to_thread(self.guard.addresses, host, port), timeout)
        except (OSError, TimeoutError) as exc:
            logger.warning("relay: %s:%d does not resolve: %s", host, port, exc or type(exc).__name__)
            raise httpcore.ConnectError(f"{host} does not resolve") from None
        last: Exception | None = None
        for addr in addrs:
            try:
                return await self._inner.connect_tcp(addr, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                logger.info("relay: connecting to %s:%d (%s) failed: %s", host, port, addr, exc)
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: SocketOptions | None = None) -> AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not relayed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a :class:`GuardedBackend` (no proxy, no unix socket)."""

    def __init__(self, guard: Guard) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(ssl_context=httpx.create_ssl_context(trust_env=False),
                                                  network_backend=GuardedBackend(guard))


def client(guard: Guard, *, timeout: httpx.Timeout, user_agent: str) -> httpx.AsyncClient:
    """An httpx client for relay upstreams: guarded connections, at most MAX_REDIRECTS hops."""
    return httpx.AsyncClient(transport=GuardedTransport(guard), timeout=timeout, follow_redirects=True,
                             max_redirects=MAX_REDIRECTS, trust_env=False, headers={"User-Agent": user_agent})
