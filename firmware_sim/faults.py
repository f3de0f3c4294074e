"""Fault injection for simulated loudspeaker nodes.

A :class:`Faults` instance describes how one simulated node misbehaves. Every knob is
bounded and cheap; the default instance is a healthy node. Randomness (``drop_rate``,
the fake radio readings) comes from a per-node ``random.Random`` seeded from ``seed``
and the node id, so a run can be repeated exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from devices.failover import UNIT_BACKOFF, Backoff
from devices.mqtt_types import BrokerAddress, Brokers, Will, broker_list
from devices.protocol import valid_id

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
    #: Clock drift in parts per million (the node clock gains this much per second of uptime).
    clock_drift_ppm: float = 0.0
    #: One-way network delay added to every message the node receives and sends (ms).
    net_delay_ms: float = 0.0
    #: Uniform random extra delay 0..jitter per message and direction (ms).
    jitter_ms: float = 0.0
    #: Firmware without clock sync: trusts its own clock for ``play`` instants (bench baseline).
    no_clock_sync: bool = False
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
    #: Crash-and-reconnect loop: after this many seconds connected the unit loses power (no clean
    #: shutdown: the broker sends its last-will) and boots again ``crash_down_s`` later. 0 = never.
    crash_every_s: float = 0.0
    crash_down_s: float = 1.0
    #: A unit that lies about its id: it logs in with its own user name (its real id) but claims to
    #: be this unit in its client id, topics and payloads. '' = honest.
    claim_id: str = ""
    #: Hardware fault codes reported in telemetry (amplifier, speaker_line, storage, power_backup).
    hw_faults: list[str] = field(default_factory=list)
    #: Commands lost on the way, by name: the first N of each never reach the unit (a QoS 1
    #: command in flight while a clean-session unit reconnects), e.g. ``{"play": 1}``.
    lose_commands: dict[str, int] = field(default_factory=dict)
    #: The kept attention tone has one byte flipped (a bad flash copy): it fails its checksum.
    tone_corrupt: bool = False
    #: Broken firmware that tries again at once after a refused or lost connection (a tight
    #: reconnect loop; §1 asks for its backoff).
    reconnect_at_once: bool = False
    #: The last-will: '' = §1's (retained `offline` on the state topic), 'none' = no will at all,
    #: 'not_retained' = that will without the retain flag.
    bad_will: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_rate <= 1.0:
            raise ValueError("drop_rate must be within 0..1")
        if not 0.0 <= self.ack_delay_s <= 60.0:
            raise ValueError("ack_delay_s must be within 0..60 s")
        if not 0.0 < self.time_scale <= 100.0:
            raise ValueError("time_scale must be within (0, 100]")
        if abs(self.clock_offset_ms) > 7 * 24 * 3600 * 1000:
            raise ValueError("clock_offset_ms is limited to one week")
        if abs(self.clock_drift_ppm) > 1000:
            raise ValueError("clock_drift_ppm is limited to ±1000")
        if not (0 <= self.net_delay_ms <= 10_000 and 0 <= self.jitter_ms <= 10_000):
            raise ValueError("net_delay_ms and jitter_ms must be within 0..10000")
        if not (self.crash_every_s == 0 or 0.5 <= self.crash_every_s <= 86400) or \
                not 0 <= self.crash_down_s <= 3600:
            raise ValueError("crash_every_s must be 0 or 0.5..86400 and crash_down_s within 0..3600")
        if any(not 0 <= n <= 100 or not valid_id(name) for name, n in self.lose_commands.items()):
            raise ValueError("lose_commands: command names, each losing 0..100 copies")
        if not 0 <= self.storage_kb <= 1024 * 1024:
            raise ValueError("storage_kb must be within 0..1 GiB")
        if self.bad_will not in ("", "none", "not_retained"):
            raise ValueError("bad_will must be '', 'none' or 'not_retained'")
        for name in ("drop_chunks", "corrupt_chunks"):
            values = getattr(self, name)
            if len(values) > MAX_FAULT_INDEXES or any(not 0 <= i <= 65534 for i in values):
                raise ValueError(f"{name}: at most {MAX_FAULT_INDEXES} indexes within 0..65534")

    def rng_for(self, node_id: str) -> random.Random:
        """The node's deterministic random source."""
        return random.Random(f"{self.seed}:{node_id}")

    def backoff(self) -> Backoff:
        """The reconnect waits: §1's, or ~10 ms for a tight-loop firmware."""
        return Backoff(0.01, 0.01) if self.reconnect_at_once else UNIT_BACKOFF

    def last_will(self, will: Will) -> Will | None:
        """The will the node sets: ``will`` (§1's), or broken as :attr:`bad_will` says."""
        if self.bad_will == "none":
            return None
        return replace(will, retain=False) if self.bad_will == "not_retained" else will


def identity(node_id: str, brokers: Brokers, faults: Faults) -> tuple[str, list[BrokerAddress]]:
    """The id a node claims and the broker login it uses on each of its brokers (username = its
    real id; a ``Faults.claim_id`` liar logs in as itself and claims another id)."""
    if not valid_id(node_id):
        raise ValueError(f"invalid node id {node_id!r}")
    if faults.claim_id and not valid_id(faults.claim_id):
        raise ValueError(f"invalid claim_id {faults.claim_id!r}")
    out = []
    for broker in broker_list(brokers):
        if broker.username is None and (broker.password is not None or faults.claim_id):
            broker = replace(broker, username=node_id)  # username = node id by convention
        out.append(broker)
    return faults.claim_id or node_id, out
