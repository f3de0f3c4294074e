"""The serial link and bus master on real ptys, loop:// and socket:// (docs/protocol.md §7)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devices.broker import free_port
from devices.serial.master import BusMaster, BusTimeout
from devices.serial.port import SerialLink, url_opener
from devices.serial.wire import BoardStatus, Cmd, NakCode, Reply, request
from firmware_sim.serial_node import Board, SerialFaults, SerialNodeSim
from tests.e2e.helpers import wait_for

pytestmark = [pytest.mark.timeout(60)]


@contextlib.asynccontextmanager
async def line(url: str, **kw: float) -> AsyncIterator[tuple[SerialLink, BusMaster, list[tuple[bool, str]]]]:
    events: list[tuple[bool, str]] = []
    link = SerialLink(url_opener(url, 115200), name="test", min_backoff=kw.pop("min_backoff", 0.05),
                      max_backoff=kw.pop("max_backoff", 0.4),
                      on_state=lambda up, why: events.append((up, why)))
    bus = BusMaster(link, reply_timeout=kw.pop("reply_timeout", 0.1), attempts=int(kw.pop("attempts", 3)))
    link.start()
    try:
        yield link, bus, events
    finally:
        await link.stop()


@pytest.mark.pty
async def test_transactions_over_a_pty_and_retransmissions_run_once() -> None:
    # Replies are corrupted half of the time, so the gateway must resend; afterwards every
    # request succeeded, the board executed each exactly once (the rest were answered from its
    # reply cache) and its volume is the last one set.
    sim = SerialNodeSim([1, 2], SerialFaults(tx_flip_rate=0.5, seed=1))
    path = sim.open_pty()
    try:
        async with line(path, attempts=8) as (link, bus, _):
            await asyncio.wait_for(link.up.wait(), 5)
            for level in range(40):
                status = await bus.request(1 + level % 2, Cmd.VOLUME, level)
                assert status.volume == level
            b1, b2 = sim.boards[1], sim.boards[2]
            assert (b1.executed, b2.executed) == (20, 20)
            assert b1.retransmissions + b2.retransmissions == bus.stats.retries > 0
            assert (b1.volume, b2.volume) == (38, 39) and bus.stats.timeouts == 0
    finally:
        await sim.stop()


@pytest.mark.pty
async def test_noisy_line_garbage_and_flips_both_ways() -> None:
    # Garbage before half the replies and bit flips on 10 % of reads in both directions: after
    # 100 requests with 6 attempts each, all succeeded and the decoder saw (and dropped) noise.
    sim = SerialNodeSim([3], SerialFaults(noise_rate=0.5, tx_flip_rate=0.1, rx_flip_rate=0.1, seed=7))
    path = sim.open_pty()
    try:
        async with line(path, attempts=6) as (link, bus, _):
            await asyncio.wait_for(link.up.wait(), 5)
            for i in range(100):
                await bus.request(3, Cmd.RELAY, i % 2)
            assert bus.stats.ok == 100 and bus.stats.timeouts == 0 and bus.stats.retries > 0
            assert link.decoder.stats.errors > 0 and sim.stats.noise_bursts > 20
            assert sim.boards[3].relay is True  # the last request (i = 99) closed it
    finally:
        await sim.stop()


async def test_loop_url_echo_is_ignored_and_requests_time_out() -> None:
    # loop:// sends our own frames back, like an RS-485 adapter without echo suppression:
    # afterwards the request timed out after 2 attempts, both echoes were recognised as
    # requests (not replies), and nothing crashed.
    async with line("loop://", attempts=2, reply_timeout=0.05) as (link, bus, events):
        await asyncio.wait_for(link.up.wait(), 5)
        with pytest.raises(BusTimeout):
            await bus.request(9, Cmd.POLL)
        assert bus.stats.echoes == 2 and bus.stats.timeouts == 1 and events == [(True, "")]


@pytest.mark.pty
async def test_pty_that_disappears_is_reopened_with_backoff(tmp_path: Path) -> None:
    # The gateway opens a udev-style symlink. The pty goes away (master closed) for ~1.2 s and
    # comes back as another /dev/pts/N behind the same symlink. Afterwards: the loss was
    # reported (up, down, up), the reopen attempts backed off (far fewer than 1.2 s / 50 ms),
    # and requests work again.
    link_path = tmp_path / "ttyLP0"
    sim = SerialNodeSim([4])
    sim.open_pty(link_path)
    async with line(str(link_path)) as (link, bus, events):
        await asyncio.wait_for(link.up.wait(), 5)
        await bus.request(4, Cmd.POLL)
        await sim.close_line()
        link_path.unlink()
        await wait_for(lambda: not link.is_up, 5, "loss noticed")
        await asyncio.sleep(1.2)
        failures = link.stats.open_failures
        assert 2 <= failures <= 8, failures
        sim2 = SerialNodeSim([4])
        sim2.open_pty(link_path)
        try:
            await asyncio.wait_for(link.up.wait(), 5)
            status = await bus.request(4, Cmd.VOLUME, 33)
            assert status.volume == 33 and sim2.boards[4].volume == 33
            assert [up for up, _ in events] == [True, False, True]
            assert link.stats.opens == 2 and link.stats.losses == 1
            assert "read failed" in events[1][1] or "cannot open" in events[1][1]
        finally:
            await sim2.stop()
    await sim.stop()


async def test_socket_url_server_killed_and_restarted() -> None:
    # socket:// to a TCP "serial server": the server dies, then returns on the same port.
    # Afterwards the link reported down then up again, and a transaction succeeds.
    port = free_port()
    sim = SerialNodeSim([6])
    await sim.serve_tcp("127.0.0.1", port)
    async with line(f"socket://127.0.0.1:{port}") as (link, bus, events):
        await asyncio.wait_for(link.up.wait(), 5)
        assert (await bus.request(6, Cmd.POWER, 0)).power is False
        await sim.stop()
        await wait_for(lambda: not link.is_up, 5, "socket loss noticed")
        sim2 = SerialNodeSim([6])
        await sim2.serve_tcp("127.0.0.1", port)
        try:
            await asyncio.wait_for(link.up.wait(), 10)
            assert (await bus.request(6, Cmd.POLL)).power is True  # a fresh board
            assert [up for up, _ in events] == [True, False, True]
        finally:
            await sim2.stop()


def test_a_busy_nak_is_not_cached_and_the_same_frame_runs_afterwards() -> None:
    # S1 (docs/protocol.md §7.4): NAK busy executes nothing and is not kept as the reply of the
    # request, so the gateway's retry with the same frame and SEQ is executed: afterwards the
    # board executed it once, and a further copy of the frame is a retransmission (cached ACK).
    board = Board(5, busy=2)
    req = request(5, 17, Cmd.VOLUME, 55)
    naks = [board.handle(req) for _ in range(2)]
    assert [(r.type, r.payload) for r in naks] == [(Reply.NAK, bytes((NakCode.BUSY,)))] * 2
    assert board.executed == 0 and board.volume == 70
    ack = board.handle(req)
    assert ack.type == Reply.ACK and BoardStatus.unpack(ack.payload).volume == 55 and board.executed == 1
    assert board.handle(req) == ack and (board.executed, board.retransmissions) == (1, 1)


@pytest.mark.pty
async def test_a_board_busy_twice_is_retried_by_the_gateway_and_succeeds() -> None:
    # S1 over a pty: the board answers NAK busy to the first two attempts; the gateway retries
    # the same frame after 50 ms x attempt and the third attempt succeeds: the volume is set,
    # executed once, no NAK reported to the caller.
    sim = SerialNodeSim([7])
    sim.boards[7].busy = 2
    path = sim.open_pty()
    try:
        async with line(path, attempts=3, reply_timeout=2.0) as (link, bus, _):
            await asyncio.wait_for(link.up.wait(), 30)
            status = await bus.request(7, Cmd.VOLUME, 42)
            assert status.volume == 42 and sim.boards[7].volume == 42
            assert (sim.boards[7].executed, sim.boards[7].busy) == (1, 0)
            assert bus.stats.naks == 0 and bus.stats.retries >= 2 and bus.stats.ok == 1
    finally:
        await sim.stop()
