"""Fault injection for simulated loudspeaker nodes.

A :class:`Faults` instance describes how one simulated node misbehaves. Every knob is
bounded and cheap; the default instance is a healthy node. Randomness (``drop_rate``,
the fake radio readings) comes from a per-node ``random.Random`` seeded from ``seed``
and the node id, so a run can be repeated exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: Chunk index sets are capped so a typo cannot make a node hold millions of ints.
MAX_FAULT_INDEXES = 4096


@dataclass
class Faults:
    """How a simulated node deviates from a healthy unit (all defaults = healthy)."""

    #: Chunk indexes dropped the first time they arrive for each broadcast (exercises repair).
    drop_chunks: set[int] = field(default_factory=set)
    #: Chunk indexes whose data gets one byte flipped the first time (the CRC must catch it).
    corrupt_chunks: set[int] = field(default_factory=set)
    #: Probability of silently dropping any incoming message (0..1), from a seeded rng.
    drop_rate: float = 0.0
    #: Seed of the node's rng (combined with the node id).
    seed: int = 0
    #: Delay before each ack and each command response is published (seconds).
    ack_delay_s: float = 0.0
    #: Node clock = real clock + this offset (ms); used for expiry, play_at and ``ts``.
    clock_offset_ms: int = 0
    #: Playback lasts ``duration_ms * repeat * time_scale``; < 1 speeds tests up.
    time_scale: float = 1.0
    #: Every new manifest is refused with failed/storage_full.
    storage_full: bool = False
    #: Flash reserved for audio files (KiB); a file that does not fit -> storage_full.
    storage_kb: int = 8192
    #: Amplifier state at boot.
    power_on: bool = True
    #: Never answer (nor execute) commands: the controller must report a timeout.
    ignore_commands: bool = False
    #: Every playback fails with failed/decode_error (a broken MP3 decoder).
    decode_error: bool = False
    #: Hardware fault codes reported in telemetry (amplifier, speaker_line, storage, power_backup).
    hw_faults: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_rate <= 1.0:
            raise ValueError("drop_rate must be within 0..1")
        if not 0.0 <= self.ack_delay_s <= 60.0:
            raise ValueError("ack_delay_s must be within 0..60 s")
        if not 0.0 < self.time_scale <= 100.0:
            raise ValueError("time_scale must be within (0, 100]")
        if abs(self.clock_offset_ms) > 7 * 24 * 3600 * 1000:
            raise ValueError("clock_offset_ms is limited to one week")
        if not 0 <= self.storage_kb <= 1024 * 1024:
            raise ValueError("storage_kb must be within 0..1 GiB")
        for name in ("drop_chunks", "corrupt_chunks"):
            values = getattr(self, name)
            if len(values) > MAX_FAULT_INDEXES or any(not 0 <= i <= 65534 for i in values):
                raise ValueError(f"{name}: at most {MAX_FAULT_INDEXES} indexes within 0..65534")

    def rng_for(self, node_id: str) -> random.Random:
        """The node's deterministic random source."""
        return random.Random(f"{self.seed}:{node_id}")
