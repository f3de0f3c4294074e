"""Simulated serial-attached boards: relay/controller boards on an RS-485 or UART line.

One :class:`SerialNodeSim` is one end of a serial line with one or more boards on it
(each with its own address, as on a multi-drop RS-485 bus). It speaks the frames of
docs/protocol.md §7 (:mod:`devices.serial.frame`, :mod:`devices.serial.wire`): it answers
requests addressed to its boards with ACK + status or NAK, keeps each board's last reply
for retransmissions (same ``seq`` → same reply, not executed twice) and ignores replies
and other addresses. Faults (:class:`SerialFaults`) make the line noisy: garbage between
frames, bit flips in both directions, unanswered requests, slow replies and the wire time
of a given baud rate.

Transports: a pty master (:meth:`SerialNodeSim.open_pty`, the gateway opens the slave
path), a TCP server for ``socket://`` (:meth:`SerialNodeSim.serve_tcp`), or any pyserial
port/URL (:meth:`SerialNodeSim.open_url`). Run it alone with
``python -m firmware_sim.serial_node --pty --addr 1,2,3``.

What a test can inspect: ``boards[addr]`` (power, relay, volume, input, ``relay_log`` of
(monotonic time, closed) and counters) and ``stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devices.serial.frame import Frame, FrameDecoder, encode_frame
from devices.serial.port import FdPort, Opener, PortLike, SerialLink, open_pty, url_opener
from devices.serial.wire import BoardStatus, Cmd, Input, NakCode, Reply, is_reply, valid_addr

logger = logging.getLogger(__name__)

#: A board does not answer for this long after RESET ("boot time").
RESET_QUIET_S = 0.3


@dataclass
class SerialFaults:
    """How the line and the boards misbehave (defaults: a clean line)."""

    drop_rate: float = 0.0  # probability that a board ignores a request it received
    noise_rate: float = 0.0  # probability of random garbage written before a reply
    noise_max: int = 24  # most garbage bytes per burst
    tx_flip_rate: float = 0.0  # probability that one bit of a reply is flipped on the line
    rx_flip_rate: float = 0.0  # probability that one bit of a received read is flipped
    reply_delay_s: float = 0.0
    baud: int | None = None  # emulate wire time: 10 bit times per byte of request + reply
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop_rate", "noise_rate", "tx_flip_rate", "rx_flip_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if not 0 <= self.noise_max <= 4096 or not 0 <= self.reply_delay_s <= 10:
            raise ValueError("noise_max within 0..4096 and reply_delay_s within 0..10 s")


@dataclass
class Board:
    """One relay/controller board in front of wired or FM equipment."""

    addr: int
    power: bool = True
    relay: bool = False
    volume: int = 70
    input: int = Input.LINE
    faults: int = 0
    fw: tuple[int, int] = (1, 2)
    booted: float = field(default_factory=time.monotonic)
    quiet_until: float = 0.0
    relay_log: list[tuple[float, bool]] = field(default_factory=list)
    executed: int = 0
    retransmissions: int = 0
    busy: int = 0  # the next this many requests are refused NAK busy (executed: none, cached: none)
    _last: tuple[int, int, bytes, Frame] | None = None

    def status(self) -> BoardStatus:
        return BoardStatus(power=self.power, relay=self.relay, volume=self.volume, input=self.input,
                           faults=self.faults, uptime_s=int(time.monotonic() - self.booted), fw=self.fw)

    def handle(self, req: Frame) -> Frame:
        """Execute a request (or replay the cached reply of a retransmission).

        ``NAK busy`` executes nothing and is not cached (docs/protocol.md §7.4): the gateway
        retries it with the same frame and ``SEQ``, and that retry is executed afresh."""
        key = (req.seq, req.type, req.payload)
        if self._last is not None and self._last[:3] == key:
            self.retransmissions += 1
            return self._last[3]
        if self.busy > 0:
            self.busy -= 1
            return Frame(self.addr, req.seq, Reply.NAK, bytes((NakCode.BUSY,)))
        code = self._execute(req)
        self.executed += 1
        if code is None:
            reply = Frame(self.addr, req.seq, Reply.ACK, self.status().pack())
        else:
            reply = Frame(self.addr, req.seq, Reply.NAK, bytes((code,)))
        self._last = (*key, reply)
        return reply

    def _execute(self, req: Frame) -> int | None:
        arg = req.payload[0] if len(req.payload) == 1 else None
        if req.type in (Cmd.POLL, Cmd.RESET):
            if req.payload:
                return NakCode.BAD_ARGS
            if req.type == Cmd.RESET:
                self.reset()
            return None
        if req.type not in (Cmd.POWER, Cmd.VOLUME, Cmd.RELAY, Cmd.INPUT):
            return NakCode.UNKNOWN
        if arg is None or (req.type != Cmd.VOLUME and arg > 2) or arg > 100:
            return NakCode.BAD_ARGS
        if req.type == Cmd.POWER:
            self.power = bool(arg)
            if not self.power:
                self.set_relay(False)
        elif req.type == Cmd.VOLUME:
            self.volume = arg
        elif req.type == Cmd.INPUT:
            self.input = arg
        else:
            if arg > 1:
                return NakCode.BAD_ARGS
            self.set_relay(bool(arg))
        return None

    def set_relay(self, closed: bool) -> None:
        if closed != self.relay:
            self.relay = closed
            self.relay_log.append((time.monotonic(), closed))

    def reset(self) -> None:
        """RESET: the reply goes out first, then the board restarts (quiet for a moment)."""
        self.booted = time.monotonic()
        self.quiet_until = self.booted + RESET_QUIET_S
        self.set_relay(False)
        self.power = True


@dataclass
class SimStats:
    requests: int = 0
    replies: int = 0
    dropped: int = 0  # drop_rate
    noise_bursts: int = 0
    tx_flips: int = 0
    rx_flips: int = 0
    not_mine: int = 0  # other addresses, or replies of other boards

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


Writer = Callable[[bytes], Awaitable[None]]


class SerialNodeSim:
    """The far end of a serial line with one or more simulated boards on it."""

    def __init__(self, addresses: list[int], faults: SerialFaults | None = None) -> None:
        if not addresses or not all(valid_addr(a) for a in addresses):
            raise ValueError("addresses must be 1..247")
        self.boards = {a: Board(a) for a in addresses}
        self.faults = faults or SerialFaults()
        self.stats = SimStats()
        self.decoder = FrameDecoder()
        self.pty_path = ""
        self._rng = random.Random(self.faults.seed)
        self._out: asyncio.Queue[tuple[Frame, int]] = asyncio.Queue(maxsize=1024)  # reply, request size
        self._write: Writer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._link: SerialLink | None = None
        self._fds: list[int] = []
        self._server: asyncio.Server | None = None
        self._tcp_writer: asyncio.StreamWriter | None = None
        self._rx_rng = random.Random(self.faults.seed + 1)  # used by the reader thread

    # ------------------------------------------------------------------ transports

    def open_pty(self, link_path: Path | None = None) -> str:
        """Create a pty and serve its master; returns the slave path (also symlinked to link_path)."""
        master, slave, path = open_pty()
        self._fds = [master, slave]  # keep the slave open: the gateway may close and reopen it
        self.pty_path = path
        if link_path is not None:
            tmp = link_path.with_name(link_path.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(path)
            tmp.replace(link_path)
        self._use_link(SerialLink(self._noisy(lambda: FdPort(master)), name=f"sim-{path}",
                                  min_backoff=0.05, max_backoff=0.5))
        return path

    def open_url(self, url: str, baudrate: int = 9600) -> None:
        """Serve a pyserial port or URL (a real adapter on a test bench, ``loop://``)."""
        self._use_link(SerialLink(self._noisy(url_opener(url, baudrate)), name=f"sim-{url}"))

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Be the far end of ``socket://host:port`` (one gateway at a time); returns the port."""
        self._start_writer()
        self._server = await asyncio.start_server(self._on_tcp, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def write(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        self._write = write
        self._tcp_writer = writer
        decoder = self.decoder = FrameDecoder()
        try:
            for _ in range(10**9):  # until the peer goes away
                data = await reader.read(4096)
                if not data:
                    break
                for frame in decoder.feed(self._rx_noise(data)):
                    self.on_frame(frame)
        except (ConnectionError, OSError):
            pass
        finally:
            if self._write is write:
                self._write = None
            writer.close()

    def _noisy(self, opener: Opener) -> Opener:
        """Wrap a port opener so that reads pass through the rx bit-flip fault."""
        return lambda: _NoisyPort(opener(), self._rx_noise)

    def _use_link(self, link: SerialLink) -> None:
        self._link = link
        link.on_frame = self.on_frame
        self._write = link.write
        link.start()
        self._start_writer()

    def _start_writer(self) -> None:
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._writer(), name="serial-sim-writer"))

    async def close_line(self) -> None:
        """The line disappears: close the pty / the TCP server (the gateway sees the port fail)."""
        if self._link is not None:
            await self._link.stop()
            self._link = None
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
        if self._server is not None:
            self._server.close()
            if self._tcp_writer is not None:
                self._tcp_writer.close()
            await self._server.wait_closed()
            self._server = None
        self._write = None

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.close_line()

    # ------------------------------------------------------------------ the boards

    def on_frame(self, frame: Frame) -> None:
        if is_reply(frame) or frame.addr not in self.boards:
            self.stats.not_mine += 1
            return
        self.stats.requests += 1
        board = self.boards[frame.addr]
        if time.monotonic() < board.quiet_until:
            return
        if self.faults.drop_rate and self._rng.random() < self.faults.drop_rate:
            self.stats.dropped += 1
            return
        reply = board.handle(frame)
        try:
            self._out.put_nowait((reply, len(encode_frame(frame))))
        except asyncio.QueueFull:
            self.stats.dropped += 1

    def _rx_noise(self, data: bytes) -> bytes:
        if data and self.faults.rx_flip_rate and self._rx_rng.random() < self.faults.rx_flip_rate:
            self.stats.rx_flips += 1
            return _flip(data, self._rx_rng)
        return data

    async def _writer(self) -> None:
        f = self.faults
        while True:  # a service loop: ends when stop() cancels it
            frame, request_size = await self._out.get()
            out = encode_frame(frame)
            if f.tx_flip_rate and self._rng.random() < f.tx_flip_rate:
                self.stats.tx_flips += 1
                out = _flip(out, self._rng)
            if f.noise_rate and self._rng.random() < f.noise_rate:
                self.stats.noise_bursts += 1
                out = self._rng.randbytes(self._rng.randint(1, max(1, f.noise_max))) + out
            delay = f.reply_delay_s + ((request_size + len(out)) * 10 / f.baud if f.baud else 0.0)
            if delay:
                await asyncio.sleep(delay)
            write = self._write
            if write is None:
                continue
            try:
                await write(out)
                self.stats.replies += 1
            except Exception as exc:  # noqa: BLE001 - the line may vanish at any time
                logger.debug("serial sim: reply lost: %s", exc)


class _NoisyPort:
    """A port whose reads may get a bit flipped (line noise on the way to the boards)."""

    def __init__(self, port: PortLike, noise: Callable[[bytes], bytes]) -> None:
        self._port = port
        self._noise = noise

    @property
    def in_waiting(self) -> int:
        return self._port.in_waiting

    def read(self, size: int = 1) -> bytes:
        return self._noise(self._port.read(size))

    def write(self, data: bytes, /) -> int | None:
        return self._port.write(data)

    def close(self) -> None:
        self._port.close()

    def cancel_read(self) -> None:
        cancel = getattr(self._port, "cancel_read", None)
        if cancel is not None:
            cancel()


def _flip(data: bytes, rng: random.Random) -> bytes:
    pos = rng.randrange(len(data) * 8)
    out = bytearray(data)
    out[pos // 8] ^= 1 << (pos % 8)
    return bytes(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m firmware_sim.serial_node",
                                 description="simulated relay/controller boards on a serial line")
    ap.add_argument("--addr", default="1", help="board addresses, e.g. 1,2,3 or 1-8")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="create a pty; the gateway opens its path")
    where.add_argument("--port", help="a serial port or pyserial URL to serve")
    where.add_argument("--listen", help="HOST:PORT, the far end of socket://HOST:PORT")
    ap.add_argument("--link", type=Path, help="with --pty: also symlink the pty here")
    ap.add_argument("--baud", type=int, default=None, help="emulate the wire time of this baud rate")
    ap.add_argument("--noise", type=float, default=0.0, help="probability of garbage before a reply")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    addrs: list[int] = []
    for part in args.addr.split(","):
        lo, _, hi = part.partition("-")
        addrs += list(range(int(lo), int(hi or lo) + 1))
    sim = SerialNodeSim(addrs, SerialFaults(noise_rate=args.noise, baud=args.baud))

    async def run() -> None:
        if args.pty:
            path = sim.open_pty(args.link)
            sys.stderr.write(f"serial boards {addrs} on {args.link or path}\n")
        elif args.port:
            sim.open_url(args.port, args.baud or 9600)
        else:
            host, _, port = args.listen.rpartition(":")
            bound = await sim.serve_tcp(host or "127.0.0.1", int(port))
            sys.stderr.write(f"serial boards {addrs} on socket://{host or '127.0.0.1'}:{bound}\n")
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
