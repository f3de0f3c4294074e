"""``loaphuong unit doctor``: is this board ready to be a unit? One line per check, PASS / WARN /
FAIL with what was seen: the configuration, the sound card (opened, its latency measured), the
power driver, the broker with the unit's credentials, the clock (the board's, and its offset to
the controller through the contract's time sync), a test tone through the speaker, and whether
the contract's ``opus`` codec can be played (libopus)."""

from __future__ import annotations

import asyncio
import io
import math
import struct
import time
import wave
from dataclasses import dataclass

from devices.mqtt import AsyncMqttClient
from devices.protocol import PayloadError, TimeReply, TimeRequest, Topics, decode, encode
from firmware_sim.unit.state import UnitConfig

#: A board clock before this (ms since 1970: 2024-01-01) has surely never been set (no RTC).
SANE_CLOCK_MS = 1_704_067_200_000


@dataclass
class Check:
    name: str
    status: str  # PASS | WARN | FAIL
    detail: str

    def line(self) -> str:
        return f"{self.status:<5} {self.name:<12} {self.detail}"


def beep_wav(seconds: float = 1.0, rate: int = 16000, hz: float = 880.0) -> bytes:
    """A WAV file of a sine beep (the doctor's test tone)."""
    n = int(seconds * rate)
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(n))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def _sound(cfg: UnitConfig, tone: bool) -> list[Check]:
    if cfg.audio.output == "null":
        return [Check("sound card", "WARN", "output 'null': this unit plays nothing aloud")]
    from firmware_sim.unit.decode import pcm_blocks
    from firmware_sim.unit.stream import PlaybackStream, PulseTarget

    a = cfg.audio
    target = PulseTarget(server=a.server, sink=a.sink, rate=a.rate)
    try:
        stream = PlaybackStream(target, "doctor")
    except Exception as exc:  # noqa: BLE001 - whatever the sound server says is this check's answer
        return [Check("sound card", "FAIL", f"cannot open {a.sink or 'the default sink'}: {exc}")]
    latency = stream.ahead_s() * 1000
    out = [Check("sound card", "PASS", f"{a.sink or 'default sink'} open, latency {latency:.0f} ms")]
    if tone:
        started = time.monotonic()
        for pcm in pcm_blocks(beep_wav(), "wav", a.rate):
            stream.write(pcm)
        stream.finish()
        out.append(Check("test tone", "PASS", f"1.0 s beep played in {time.monotonic() - started:.1f} s"))
    else:
        stream.close()
    return out


def opus_check() -> Check:
    """Can this board play the contract's ``opus`` codec (a ward's speech settings may choose it)?"""
    from firmware_sim.unit import libopus

    try:
        with libopus.Decoder(48000):
            version = libopus.version()
    except libopus.OpusError as exc:
        return Check("opus", "WARN", f"{exc}: bulletins in Opus fail decode_error")
    return Check("opus", "PASS", f"{version}: bulletins in Opus play")


def _power(cfg: UnitConfig) -> Check:
    from firmware_sim.unit.power import PowerSetupError, make_power

    try:
        driver = make_power(cfg.power)
    except PowerSetupError as exc:
        return Check("power", "FAIL", str(exc))
    if driver.name == "none":
        return Check("power", "WARN", "driver 'none': this board cannot switch its amplifier")
    faults = driver.faults()
    detail = f"driver {driver.name}" + (f", faults {faults}" if faults else "")
    return Check("power", "FAIL" if faults else "PASS", detail)


async def _broker(cfg: UnitConfig, timeout_s: float) -> list[Check]:
    addr = cfg.broker_addresses()[0]
    topics = Topics(cfg.prefix)
    replies: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
    link = AsyncMqttClient(f"{cfg.node_id}-doctor", addr, log_failures=False,
                           on_message=lambda _t, p, _r: replies.put_nowait((p, time.time() * 1000)))
    link.start()
    try:
        try:
            await asyncio.wait_for(link.connected.wait(), timeout_s)
        except TimeoutError:
            return [Check("broker", "FAIL", f"{addr}: {link.last_error or 'no answer'} (check host, port, "
                                            "username and password)")]
        out = [Check("broker", "PASS", f"{addr} accepted the unit's credentials")]
        sub = link.subscribe([topics.clock(cfg.node_id)], qos=0)
        if sub is not None:
            await asyncio.wait_for(sub, timeout_s)
        out.append(await _clock(link, topics, cfg.node_id, replies, timeout_s))
        return out
    finally:
        await link.stop()


async def _clock(link: AsyncMqttClient, topics: Topics, node_id: str,
                 replies: asyncio.Queue[tuple[bytes, float]], timeout_s: float) -> Check:
    now = time.time() * 1000
    board = "board clock " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now / 1000))
    if now < SANE_CLOCK_MS:
        board += " (never set: the unit relies on the controller's time sync)"
    t0 = int(now)
    link.publish_nowait(topics.time(node_id), encode(TimeRequest(ts=t0, node_id=node_id, t0=t0)))
    try:
        payload, t3 = await asyncio.wait_for(replies.get(), timeout_s)
        r = decode(TimeReply, payload)
    except (TimeoutError, PayloadError):
        return Check("clock", "WARN", f"{board}; no controller answered the time sync")
    offset = ((r.t1 - r.t0) + (r.t2 - t3)) / 2
    delay = (t3 - r.t0) - (r.t2 - r.t1)
    return Check("clock", "PASS", f"{board}; controller − board {offset:+.0f} ms (round trip {delay:.0f} ms)")


async def doctor(cfg: UnitConfig, *, tone: bool = True, timeout_s: float = 10.0) -> int:
    checks = [Check("config", "PASS", f"unit {cfg.node_id}, prefix {cfg.prefix}, brokers {cfg.brokers}")]
    checks += await asyncio.to_thread(_sound, cfg, tone)
    checks.append(opus_check())
    checks.append(_power(cfg))
    checks += await _broker(cfg, timeout_s)
    for c in checks:
        print(c.line())
    failed = [c for c in checks if c.status == "FAIL"]
    print(f"{cfg.node_id}: {len(failed)} check(s) failed" if failed else f"{cfg.node_id}: ready")
    return 1 if failed else 0
