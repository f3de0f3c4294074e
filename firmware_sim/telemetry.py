"""Heartbeats and telemetry of a simulated node (docs/protocol.md §1).

:class:`Reporter` sends the heartbeat every ``heartbeat_s`` (a sequence number per boot, what
plays) and telemetry every ``telemetry_s`` and "on change" (power, volume, what plays and from
which source, relay state, signal, temperature, free flash, clock offset). It asks the parts
that hold each value; the radio and temperature wander a little from a seeded rng.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol

from devices.protocol import Heartbeat, Telemetry, encode
from firmware_sim.hardware import Board
from firmware_sim.io import NodeIO
from firmware_sim.player import Player
from firmware_sim.relay import RelayFetcher


class LiveSource(Protocol):
    @property
    def active(self) -> str: ...


class ClockOffset(Protocol):
    @property
    def offset_ms(self) -> float | None: ...


class Reporter:
    """One node's heartbeats and telemetry (see the module docstring)."""

    def __init__(self, io: NodeIO, rng: random.Random, *, fw: str, heartbeat_s: float,
                 telemetry_s: float, player: Player, live: LiveSource, relay: RelayFetcher,
                 storage_used: Callable[[], int], sync: ClockOffset, board: Board | None = None) -> None:
        self._io = io
        self._board = board  # a real board reports its own faults, flash, address, temperature
        self._rng = rng
        self.fw = fw
        self.heartbeat_s = heartbeat_s
        self.telemetry_s = telemetry_s
        self._player, self._live, self._relay, self._sync = player, live, relay, sync
        self._storage_used = storage_used
        self._ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        self._rssi = rng.randint(-95, -60)
        self._temp = round(rng.uniform(33.0, 45.0), 1)
        self._seq = 0
        self._next_hb = self._next_tel = float("inf")

    def boot(self) -> None:
        """A new boot: heartbeat sequence numbers start again at 0."""
        self._seq = 0

    def stop(self) -> None:
        """Powered down: nothing is due until the next connect."""
        self._next_hb = self._next_tel = float("inf")

    def connected(self, now: float, session: str) -> None:
        """Right after connecting: one heartbeat and one telemetry now, then periodically."""
        self.heartbeat(now, session)
        self.telemetry(now)

    def tick(self, now: float, session: str) -> None:
        if now >= self._next_hb:
            self.heartbeat(now, session)
        if now >= self._next_tel:
            self.telemetry(now)

    def heartbeat(self, now: float, session: str) -> None:
        io = self._io
        hb = Heartbeat(ts=io.clock_ms(), node_id=io.node_id, session=session, seq=self._seq,
                       uptime_s=io.uptime_s(), playing=self._player.playing)
        if io.publish(io.topics.heartbeat(io.node_id), encode(hb), qos=0):
            io.stats.heartbeats += 1
            self._seq += 1
        self._next_hb = now + self.heartbeat_s

    def telemetry(self, now: float) -> None:
        io, rng = self._io, self._rng
        self._rssi = max(-110, min(-50, self._rssi + rng.randint(-2, 2)))
        self._temp = round(max(20.0, min(70.0, self._temp + rng.uniform(-0.5, 0.5))), 1)
        offset = self._sync.offset_ms
        tel = Telemetry(
            ts=io.clock_ms(), node_id=io.node_id, power=self._player.power, volume=self._player.volume,
            uptime_s=io.uptime_s(), clock_offset_ms=None if offset is None else round(offset),
            fw=self.fw, relay=self._relay.state, **self._source(), **self._board_values(),
        )
        if io.publish(io.topics.telemetry(io.node_id), encode(tel), qos=0):
            io.stats.telemetry += 1
        self._next_tel = now + self.telemetry_s

    def _board_values(self) -> dict[str, Any]:
        b, faults = self._board, self._io.faults
        if b is None:  # the simulator's made-up radio, temperature and flash
            return {"rssi_dbm": self._rssi, "temp_c": self._temp, "ip": self._ip,
                    "storage_free_kb": max(0, faults.storage_kb * 1024 - self._storage_used()) // 1024,
                    "faults": list(faults.hw_faults)}
        out = [*b.faults(), *self._player.output.faults(), *self._player.amp.faults()]
        return {"temp_c": b.temp_c(), "ip": b.ip(), "storage_free_kb": b.storage_free_kb(),
                "faults": sorted(set(out))}

    def _source(self) -> dict[str, str]:
        """Telemetry ``playing``/``source``: live, else a bulletin, else the relay stream, else idle."""
        if self._live.active:
            return {"playing": self._live.active, "source": "live"}
        if self._player.playing:
            return {"playing": self._player.playing, "source": "bulletin"}
        if self._relay.url:
            return {"playing": self._relay.url[:500], "source": "relay"}
        return {"playing": "", "source": "idle"}
