"""A serial port that is always being (re)opened: reader thread, frame decoder, backoff, faults.

Why a reader thread rather than ``loop.add_reader`` on the port's file descriptor: the
gateway must run on real ports, ptys *and* pyserial URLs. ``loop://`` has no descriptor
at all and ``socket://`` hides its socket, while a blocking ``read`` with a short timeout
works the same on every pyserial backend (this is pyserial's own ``serial.threaded``
design). The thread only moves bytes: it hands each read to the event loop with
``call_soon_threadsafe``; framing (:class:`~devices.serial.frame.FrameDecoder`) and
everything after it run on the loop thread. Writes go through a one-thread executor, so
they keep their order and never interleave, and a slow port cannot stall the loop.

When the port fails (unplugged USB adapter, closed pty, dropped TCP connection) the link
reports ``on_state(False, reason)``, closes it and tries to open it again: first after
``min_backoff`` seconds, doubling up to ``max_backoff`` (±20 % jitter) while opening keeps
failing or the port keeps dying within ``STABLE_S`` of being opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import select
import threading
import time
import tty
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import serial

from devices.serial.frame import Frame, FrameDecoder, encode_frame

logger = logging.getLogger(__name__)

#: A port that stayed open this long resets the reopen backoff.
STABLE_S = 5.0
#: Read timeout of the reader thread: how fast it notices it should stop.
READ_TIMEOUT_S = 0.05


class SerialLinkError(Exception):
    """Base error of the serial side."""


class PortDown(SerialLinkError):
    """The port is not open right now (it disappeared or could not be opened)."""


class PortLike(Protocol):
    """What the link needs from a port: pyserial's ``SerialBase`` or :class:`FdPort`."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


Opener = Callable[[], PortLike]


def url_opener(url: str, baudrate: int = 9600) -> Opener:
    """Open ``url`` with pyserial: a device path (/dev/ttyUSB0, a pty), ``loop://``, ``socket://h:p``."""

    extra: dict[str, Any] = {} if "://" in url else {"exclusive": True}  # flock: one gateway per device

    def open_port() -> PortLike:
        port: Any = serial.serial_for_url(url, baudrate=baudrate, timeout=READ_TIMEOUT_S,
                                          write_timeout=2.0, **extra)
        return port  # type: ignore[no-any-return]

    return open_port


class FdPort:
    """A raw file descriptor as a port (e.g. a pty master, which pyserial cannot open)."""

    def __init__(self, fd: int, *, timeout: float = READ_TIMEOUT_S, owns_fd: bool = False) -> None:
        self.fd = fd
        self.timeout = timeout
        self._owns = owns_fd

    @property
    def in_waiting(self) -> int:
        return 0  # unknown; read() returns whatever is available

    def read(self, size: int = 1) -> bytes:
        """Up to max(size, 4096) bytes once any are available, b"" after the timeout."""
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            return b""
        data = os.read(self.fd, max(size, 4096))
        if not data:
            raise OSError("end of file on descriptor")
        return data

    def write(self, data: bytes, /) -> int:
        view = memoryview(data)
        deadline = time.monotonic() + 2.0
        while view and time.monotonic() < deadline:
            _, ready, _ = select.select([], [self.fd], [], 0.1)
            if ready:
                view = view[os.write(self.fd, view):]
        if view:
            raise OSError("write timed out")
        return len(data)

    def close(self) -> None:
        if self._owns:
            with contextlib.suppress(OSError):
                os.close(self.fd)


def open_pty() -> tuple[int, int, str]:
    """A new pty in raw mode: (master fd, slave fd, slave path). The caller closes both fds."""
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    return master, slave, os.ttyname(slave)


@dataclass
class PortStats:
    opens: int = 0
    open_failures: int = 0
    losses: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    handler_errors: int = 0


FrameHandler = Callable[[Frame], None]
StateHandler = Callable[[bool, str], None]


class SerialLink:
    """One serial line: opens it (again and again), decodes frames, writes frames."""

    def __init__(self, opener: Opener, *, name: str = "serial", on_frame: FrameHandler | None = None,
                 on_state: StateHandler | None = None, min_backoff: float = 0.5,
                 max_backoff: float = 30.0) -> None:
        self.name = name
        self.on_frame = on_frame
        self.on_state = on_state
        self.decoder = FrameDecoder()
        self.stats = PortStats()
        self.last_error = ""
        self._opener = opener
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._port: PortLike | None = None
        self._gen = 0
        self._lost = asyncio.Event()
        self._stop_reader = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: ThreadPoolExecutor | None = None
        self.up = asyncio.Event()
        self._reported: bool | None = None

    @property
    def is_up(self) -> bool:
        return self.up.is_set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-write")
        self._task = asyncio.create_task(self._run(), name=f"serial-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_port()
        if self._writer is not None:
            self._writer.shutdown(wait=False)
            self._writer = None

    async def send(self, frame: Frame) -> None:
        await self.write(encode_frame(frame))

    async def write(self, data: bytes) -> None:
        """Write bytes in order; PortDown if the port is not open or the write fails."""
        port, gen = self._port, self._gen
        if port is None or self._loop is None or self._writer is None:
            raise PortDown(self.last_error or f"{self.name} is not open")
        try:
            await self._loop.run_in_executor(self._writer, port.write, data)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._lost_in_loop(gen, f"write failed: {exc}")
            raise PortDown(str(exc)) from None
        self.stats.bytes_out += len(data)

    # ------------------------------------------------------------------ open / reopen

    async def _run(self) -> None:
        assert self._loop is not None
        delay = self._min_backoff
        while True:
            try:
                port = await self._loop.run_in_executor(None, self._opener)
            except (serial.SerialException, OSError, ValueError) as exc:
                self.stats.open_failures += 1
                self._set_state(False, f"cannot open: {exc}")
                logger.warning("%s: cannot open the port (%s); retrying in %.2f s", self.name, exc, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self._max_backoff)
                continue
            opened_at = time.monotonic()
            self._attach(port)
            self.stats.opens += 1
            logger.info("%s: port open", self.name)
            self._set_state(True, "")
            await self._lost.wait()
            await self._close_port()
            self.stats.losses += 1
            self._set_state(False, self.last_error or "port lost")
            if time.monotonic() - opened_at >= STABLE_S:
                delay = self._min_backoff
            logger.warning("%s: port lost (%s); reopening in %.2f s", self.name, self.last_error, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._max_backoff)

    def _attach(self, port: PortLike) -> None:
        self._gen += 1
        self._port = port
        self._lost.clear()
        self.decoder.reset()
        self._stop_reader = threading.Event()
        self._thread = threading.Thread(target=self._reader, args=(port, self._gen, self._stop_reader),
                                        name=f"{self.name}-read", daemon=True)
        self._thread.start()

    async def _close_port(self) -> None:
        port, thread = self._port, self._thread
        self._port = self._thread = None
        self._stop_reader.set()
        if port is None:
            return
        cancel = getattr(port, "cancel_read", None)
        if cancel is not None:
            with contextlib.suppress(Exception):
                cancel()
        loop = asyncio.get_running_loop()
        if thread is not None:
            await loop.run_in_executor(None, thread.join, 2.0)
        with contextlib.suppress(Exception):
            await loop.run_in_executor(None, port.close)

    def _set_state(self, up: bool, error: str) -> None:
        """Report transitions (and the very first state) to ``on_state``."""
        self.last_error = "" if up else error
        if up == self._reported:
            return
        self._reported = up
        if up:
            self.up.set()
        else:
            self.up.clear()
        if self.on_state is not None:
            try:
                self.on_state(up, error)
            except Exception:
                logger.exception("%s: state handler failed", self.name)

    # ------------------------------------------------------------------ reader thread

    def _reader(self, port: PortLike, gen: int, stop: threading.Event) -> None:
        assert self._loop is not None
        loop = self._loop
        try:
            while not stop.is_set():
                data = port.read(port.in_waiting or 1)
                if data and not stop.is_set():
                    loop.call_soon_threadsafe(self._on_bytes, gen, data)
        except Exception as exc:  # noqa: BLE001 - any failure of the port ends this reader
            if not stop.is_set():
                with contextlib.suppress(RuntimeError):  # loop closed
                    loop.call_soon_threadsafe(self._lost_in_loop, gen, f"read failed: {exc}")

    def _lost_in_loop(self, gen: int, reason: str) -> None:
        if gen == self._gen and not self._lost.is_set():
            self.last_error = reason
            self._lost.set()

    def _on_bytes(self, gen: int, data: bytes) -> None:
        if gen != self._gen:
            return  # from a port that was closed since
        self.stats.bytes_in += len(data)
        for frame in self.decoder.feed(data):
            if self.on_frame is None:
                continue
            try:
                self.on_frame(frame)
            except Exception:
                self.stats.handler_errors += 1
                logger.exception("%s: frame handler failed", self.name)
