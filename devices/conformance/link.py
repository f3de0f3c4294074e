"""The kit's link mode: the unit under test connects to the kit's own TCP port and the kit
forwards its connection to the broker (docs/conformance.md *Link mode*).

On the way the kit reads each connection's CONNECT (:mod:`devices.conformance.mqtt_wire`: the
client id, the login, the keepalive, the last-will), and it can do to the unit what only the
network can: refuse the next logins with CONNACK "not authorized", keep the next ones waiting,
and cut every connection at once with no DISCONNECT (the broker then publishes the unit's will).
After the CONNECT the bytes are forwarded untouched, both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass

from devices.conformance.mqtt_wire import (
    CONNECT,
    Connect,
    WireError,
    connack_code,
    connack_refused,
    parse_connect,
    read_packet,
)
from devices.mqtt_types import BrokerAddress

logger = logging.getLogger(__name__)

#: How long a new connection may take to send its CONNECT.
CONNECT_WAIT_S = 10.0


@dataclass
class Attempt:
    """One TCP connection the unit opened to the kit's port."""

    at: float  # time.monotonic() of the accept
    connect: Connect | None = None
    outcome: str = "open"  # refused | forwarded | held | no CONNECT: ... | broker unreachable: ...
    answered_at: float = 0.0  # when the kit refused it / forwarded the broker's CONNACK
    broker_code: int | None = None  # the broker's CONNACK code for a forwarded one (0 = accepted)
    ended_at: float = 0.0


class KitLink:
    """A small MQTT-aware TCP proxy between the unit and ``upstream`` (the broker)."""

    def __init__(self, host: str, port: int, upstream: BrokerAddress) -> None:
        self.host, self.port, self.upstream = host, port, upstream
        self.attempts: list[Attempt] = []
        self._refuse = 0
        self._open = asyncio.Event()
        self._open.set()
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen (``port`` 0: any free port, read back in :attr:`port`). Raises OSError."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._open.set()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> KitLink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __str__(self) -> str:
        return f"{self.host}:{self.port} -> {self.upstream}"

    # ------------------------------------------------------------------ what the items ask

    def refuse(self, count: int) -> None:
        """Answer the next ``count`` CONNECTs with CONNACK "not authorized"."""
        self._refuse = count

    def hold(self) -> None:
        """Keep the next logins waiting (CONNECT read, nothing answered) until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def cut(self) -> int:
        """Drop every forwarded connection at once, both sides, no DISCONNECT; returns how many."""
        pairs, self._pairs = self._pairs, set()
        for unit_w, broker_w in pairs:
            unit_w.transport.abort()
            broker_w.transport.abort()
        return len(pairs)

    @property
    def live(self) -> int:
        """Forwarded connections open now."""
        return len(self._pairs)

    def since(self, at: float) -> list[Attempt]:
        return [a for a in self.attempts if a.at >= at]

    # ------------------------------------------------------------------ one connection

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._connection(reader, writer), name="kit-link")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempt = Attempt(at=time.monotonic())
        self.attempts.append(attempt)
        try:
            await self._handle(attempt, reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            if attempt.outcome == "open":
                attempt.outcome = f"closed by the unit before its CONNECT ({type(exc).__name__})"
        finally:
            attempt.ended_at = time.monotonic()
            writer.transport.abort()

    async def _handle(self, attempt: Attempt, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        try:
            kind, body, raw = await asyncio.wait_for(read_packet(reader), CONNECT_WAIT_S)
            if kind != CONNECT:
                raise WireError(f"the first packet is of type {kind}, not CONNECT")
            attempt.connect = conn = parse_connect(body)
        except (WireError, TimeoutError) as exc:
            attempt.outcome = f"no CONNECT: {exc or f'none within {CONNECT_WAIT_S:.0f} s'}"
            return
        if self._refuse > 0:
            self._refuse -= 1
            writer.write(connack_refused(conn.level))
            writer.close()  # the server closes after a refusing CONNACK (MQTT 3.1.1 §3.2.2.3)
            attempt.outcome, attempt.answered_at = "refused", time.monotonic()
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            return
        if not self._open.is_set():
            attempt.outcome = "held"
            await self._open.wait()
        try:
            b_reader, b_writer = await asyncio.wait_for(asyncio.open_connection(
                self.upstream.host, self.upstream.port, ssl=self._tls()), CONNECT_WAIT_S)
        except (OSError, TimeoutError) as exc:
            attempt.outcome = f"broker unreachable: {exc}"
            return
        await self._forward(attempt, raw, reader, writer, b_reader, b_writer)

    async def _forward(self, attempt: Attempt, connect: bytes, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, b_reader: asyncio.StreamReader,
                       b_writer: asyncio.StreamWriter) -> None:
        pair = (writer, b_writer)
        self._pairs.add(pair)
        attempt.outcome = "forwarded"
        try:
            b_writer.write(connect)
            kind, body, raw = await asyncio.wait_for(read_packet(b_reader), CONNECT_WAIT_S)
            attempt.broker_code, attempt.answered_at = connack_code(kind, body), time.monotonic()
            writer.write(raw)
            await asyncio.gather(_pipe(reader, b_writer), _pipe(b_reader, writer))
        except (WireError, TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._pairs.discard(pair)
            b_writer.transport.abort()

    def _tls(self) -> ssl.SSLContext | None:
        if not self.upstream.tls:
            return None
        return ssl.create_default_context(cafile=self.upstream.ca_file)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until ``src`` ends; then end ``dst`` the same way (a FIN stays a FIN: the broker fires
    the will of a unit whose socket closed without DISCONNECT, as it would without the kit)."""
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        dst.transport.abort()
        return
    with contextlib.suppress(ConnectionError, OSError):
        if dst.can_write_eof():
            dst.write_eof()
