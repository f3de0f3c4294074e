"""What the frames of the serial line mean (docs/protocol.md §7.3): requests, replies, status.

Shared by the gateway (bus master) and ``firmware_sim.serial_node`` (the child boards), as
:mod:`devices.protocol` is shared on the MQTT side. A child board is a relay/controller
board in front of wired or FM equipment: it switches its amplifier (``POWER``), connects
the station's programme line to its speakers (``RELAY``), selects an input and sets a
volume. It does not store or decode audio.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from devices.serial.frame import Frame

#: Child addresses on one line. 0 is reserved (no board may answer it); 248-255 are reserved.
MIN_ADDR = 1
MAX_ADDR = 247
#: TYPE values with this bit set are replies (board -> gateway); without it, requests.
REPLY_BIT = 0x80


class Cmd(enum.IntEnum):
    """Requests (gateway -> board). Every request is answered by ACK or NAK."""

    POLL = 0x01  # no payload: "are you there", answered with the status
    POWER = 0x02  # 1 byte: 0 off, 1 on (the board's amplifier)
    VOLUME = 0x03  # 1 byte: 0..100
    RELAY = 0x04  # 1 byte: 0 open, 1 closed (programme line -> speakers)
    INPUT = 0x05  # 1 byte: an Input value
    RESET = 0x06  # no payload: ACK first, then the board restarts


class Reply(enum.IntEnum):
    ACK = 0x80  # payload: the status block after executing the request
    NAK = 0x81  # payload: 1 byte NakCode


class NakCode(enum.IntEnum):
    BAD_ARGS = 1  # wrong payload length or value
    UNKNOWN = 2  # unknown TYPE
    BUSY = 3  # try again later (the gateway retries)
    FAULT = 4  # hardware refused (e.g. relay coil fault)


class Input(enum.IntEnum):
    LINE = 0  # the station's programme line (what the gateway plays)
    FM = 1  # the board's FM receiver (relay of province/national radio)
    AUX = 2


#: Fault bits of the status block -> telemetry fault codes of docs/protocol.md §1.
FAULT_BITS = {0: "amplifier", 1: "speaker_line", 2: "power_backup"}

#: flags(power bit0, relay bit1), volume, input, faults, uptime_s (u32), fw major, fw minor.
_STATUS = struct.Struct(">BBBBIBB")
STATUS_SIZE = _STATUS.size


@dataclass(frozen=True)
class BoardStatus:
    power: bool = True
    relay: bool = False
    volume: int = 70
    input: int = Input.LINE
    faults: int = 0
    uptime_s: int = 0
    fw: tuple[int, int] = (1, 0)

    def pack(self) -> bytes:
        flags = (1 if self.power else 0) | (2 if self.relay else 0)
        return _STATUS.pack(flags, self.volume, self.input, self.faults,
                            min(self.uptime_s, 0xFFFFFFFF), *self.fw)

    @classmethod
    def unpack(cls, payload: bytes) -> BoardStatus:
        """Parse a status block; ValueError if it has the wrong size or values out of range."""
        if len(payload) != STATUS_SIZE:
            raise ValueError(f"status block of {len(payload)} bytes, expected {STATUS_SIZE}")
        flags, volume, inp, faults, uptime, major, minor = _STATUS.unpack(payload)
        if volume > 100 or flags > 3:
            raise ValueError("status block out of range")
        return cls(power=bool(flags & 1), relay=bool(flags & 2), volume=volume, input=inp,
                   faults=faults, uptime_s=uptime, fw=(major, minor))

    @property
    def fault_codes(self) -> list[str]:
        return [code for bit, code in FAULT_BITS.items() if self.faults & (1 << bit)]

    @property
    def fw_version(self) -> str:
        return f"{self.fw[0]}.{self.fw[1]}"


def request(addr: int, seq: int, cmd: Cmd, arg: int | None = None) -> Frame:
    return Frame(addr, seq, int(cmd), b"" if arg is None else bytes((arg,)))


def is_reply(frame: Frame) -> bool:
    return bool(frame.type & REPLY_BIT)


def valid_addr(addr: int) -> bool:
    return MIN_ADDR <= addr <= MAX_ADDR
