"""The few MQTT bytes the kit's link mode reads: a packet's fixed header, the CONNECT packet
(MQTT 3.1, 3.1.1 and 5) and the CONNACK — enough to see how a unit logs in and what its
last-will is, and to refuse a login (docs/conformance.md *Link mode*).

Nothing else of MQTT is parsed: once a connection is let through, its bytes are forwarded as
they are (:mod:`devices.conformance.link`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

#: A CONNECT larger than this is not read (a will payload is a small state object; §6 limits).
MAX_CONNECT = 256 * 1024
CONNECT, CONNACK = 1, 2
#: CONNACK "not authorized": MQTT 3.1.1 return code 5, MQTT 5 reason code 0x87
REFUSED_V3, REFUSED_V5 = 5, 0x87


class WireError(ValueError):
    """The bytes are not the MQTT packet they should be."""


@dataclass(frozen=True)
class WillSpec:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class Connect:
    """What a CONNECT says about the client (the password's value is never kept)."""

    level: int  # 3 = MQTT 3.1, 4 = 3.1.1, 5 = MQTT 5
    client_id: str
    username: str | None
    password: bool
    clean: bool  # clean session (3.1.1) / clean start (5)
    keepalive: int
    will: WillSpec | None

    def describe(self) -> str:
        will = "no will" if self.will is None else (
            f"will on {self.will.topic} qos {self.will.qos} retain {self.will.retain}")
        return (f"MQTT level {self.level}, client id {self.client_id!r}, username "
                f"{self.username!r}, password {'sent' if self.password else 'NOT sent'}, clean "
                f"{self.clean}, keepalive {self.keepalive} s, {will}")


async def read_packet(reader: asyncio.StreamReader, limit: int = MAX_CONNECT) -> tuple[int, bytes, bytes]:
    """One packet: (type, body after the fixed header, the raw bytes). Raises WireError, or
    asyncio.IncompleteReadError when the peer closes first."""
    head = await reader.readexactly(1)
    raw, length, shift = bytearray(head), 0, 0
    for _ in range(4):
        b = (await reader.readexactly(1))[0]
        raw.append(b)
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    else:
        raise WireError("remaining length longer than 4 bytes")
    if length > limit:
        raise WireError(f"packet of {length} bytes (over {limit})")
    body = await reader.readexactly(length)
    return head[0] >> 4, body, bytes(raw) + body


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise WireError("CONNECT ends early")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        try:
            return self.binary().decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("a string of the CONNECT is not UTF-8") from None

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            b = self.u8()
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value
        raise WireError("variable byte integer longer than 4 bytes")

    def skip_properties(self) -> None:  # MQTT 5
        self.take(self.varint())


def parse_connect(body: bytes) -> Connect:
    """The CONNECT's fields (its body, after the fixed header)."""
    c = _Cursor(body)
    name, level = c.text(), c.u8()
    if (name, level) not in (("MQIsdp", 3), ("MQTT", 4), ("MQTT", 5)):
        raise WireError(f"protocol {name!r} level {level} is not MQTT 3.1, 3.1.1 or 5")
    flags, keepalive = c.u8(), c.u16()
    if flags & 0x01:
        raise WireError("reserved CONNECT flag set")
    has_will, will_qos, will_retain = bool(flags & 0x04), (flags >> 3) & 0x03, bool(flags & 0x20)
    if will_qos == 3 or (not has_will and (will_qos or will_retain)):
        raise WireError("will QoS / retain flags without a will, or QoS 3")
    if level == 5:
        c.skip_properties()
    client_id = c.text()
    will = None
    if has_will:
        if level == 5:
            c.skip_properties()
        will = WillSpec(c.text(), c.binary(), will_qos, will_retain)
    username = c.text() if flags & 0x80 else None
    if flags & 0x40:
        c.binary()  # the password: its presence is what the kit checks, never its value
    return Connect(level=level, client_id=client_id, username=username, password=bool(flags & 0x40),
                   clean=bool(flags & 0x02), keepalive=keepalive, will=will)


def connack_refused(level: int) -> bytes:
    """CONNACK "not authorized" in the client's own MQTT version."""
    if level == 5:
        return bytes([CONNACK << 4, 3, 0, REFUSED_V5, 0])  # flags, reason, no properties
    return bytes([CONNACK << 4, 2, 0, REFUSED_V3])


def connack_code(packet_type: int, body: bytes) -> int | None:
    """The return / reason code of a CONNACK (0 = accepted), None if it is not one."""
    return body[1] if packet_type == CONNACK and len(body) >= 2 else None
