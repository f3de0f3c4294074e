"""The gateway as master of a half-duplex bus (RS-485): one request at a time, matched replies.

A transaction sends a request to one child address and waits for the ACK/NAK that
echoes its address and sequence number. No reply within ``reply_timeout`` (lost or
corrupted on the line) → the same frame, same ``seq``, is sent again, up to ``attempts``
times; a child that already executed it answers from its reply cache without executing
twice. ``NAK BUSY`` is retried too; other NAKs are final. Frames that are not the awaited
reply are counted and ignored: our own requests echoed by an adapter without echo
suppression (or ``loop://``), late replies to an earlier attempt, replies from another
address. Sequence numbers run per address from a random start, so the first request
after a gateway restart cannot be mistaken for a retransmission.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass

from devices.serial.frame import Frame
from devices.serial.port import SerialLink, SerialLinkError
from devices.serial.wire import BoardStatus, Cmd, NakCode, Reply, is_reply, request, valid_addr

logger = logging.getLogger(__name__)


class BusTimeout(SerialLinkError):
    """The child did not answer (after every attempt)."""


class BusNak(SerialLinkError):
    """The child refused the request."""

    def __init__(self, code: int) -> None:
        try:
            name = NakCode(code).name.lower()
        except ValueError:
            name = f"code {code}"
        super().__init__(f"refused by the board ({name})")
        self.code = code


@dataclass
class BusStats:
    requests: int = 0
    ok: int = 0
    retries: int = 0
    timeouts: int = 0
    naks: int = 0
    bad_replies: int = 0  # valid frame, unreadable status block
    echoes: int = 0  # requests seen on the line (our own echo)
    stray: int = 0  # replies nobody waits for (late, or wrong addr/seq)


class BusMaster:
    """Serialises transactions on one :class:`SerialLink` and matches replies to requests."""

    def __init__(self, link: SerialLink, *, reply_timeout: float = 0.2, attempts: int = 3,
                 busy_backoff: float = 0.05) -> None:
        if attempts < 1 or reply_timeout <= 0:
            raise ValueError("attempts >= 1 and reply_timeout > 0 required")
        self.link = link
        self.reply_timeout = reply_timeout
        self.attempts = attempts
        self.busy_backoff = busy_backoff
        self.stats = BusStats()
        self._lock = asyncio.Lock()
        self._seq: dict[int, int] = {}
        self._waiting: tuple[int, int, asyncio.Future[Frame]] | None = None
        link.on_frame = self.on_frame

    def _next_seq(self, addr: int) -> int:
        seq = (self._seq.get(addr, random.randrange(256)) + 1) & 0xFF
        self._seq[addr] = seq
        return seq

    async def request(self, addr: int, cmd: Cmd, arg: int | None = None, *,
                      attempts: int | None = None) -> BoardStatus:
        """Run one transaction; the board's status after it, or BusTimeout / BusNak / PortDown."""
        if not valid_addr(addr):
            raise ValueError(f"invalid child address {addr}")
        tries = attempts or self.attempts
        async with self._lock:
            self.stats.requests += 1
            frame = request(addr, self._next_seq(addr), cmd, arg)
            for attempt in range(tries):
                if attempt:
                    self.stats.retries += 1
                reply = await self._exchange(frame)
                if reply is None:
                    continue
                if reply.type == Reply.NAK:
                    code = reply.payload[0] if reply.payload else 0
                    if code == NakCode.BUSY and attempt + 1 < tries:
                        await asyncio.sleep(self.busy_backoff * (attempt + 1))
                        continue
                    self.stats.naks += 1
                    raise BusNak(code)
                try:
                    status = BoardStatus.unpack(reply.payload)
                except ValueError:
                    self.stats.bad_replies += 1
                    continue
                self.stats.ok += 1
                return status
            self.stats.timeouts += 1
            raise BusTimeout(f"no answer from address {addr} ({cmd.name}, {tries} attempts)")

    async def _exchange(self, frame: Frame) -> Frame | None:
        """Send ``frame`` once; the matching reply or None after the reply timeout."""
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiting = (frame.addr, frame.seq, fut)
        try:
            await self.link.send(frame)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # coincides with the reply, and a cancelled poll loop would then run on for ever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.reply_timeout):
                    return await fut
            return None
        finally:
            self._waiting = None

    def on_frame(self, frame: Frame) -> None:
        if not is_reply(frame):
            self.stats.echoes += 1
            return
        waiting = self._waiting
        if waiting is None or (frame.addr, frame.seq) != waiting[:2] or waiting[2].done():
            self.stats.stray += 1
            return
        if frame.type not in (Reply.ACK, Reply.NAK):
            self.stats.stray += 1
            return
        waiting[2].set_result(frame)
