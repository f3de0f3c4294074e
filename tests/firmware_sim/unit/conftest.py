"""Fixtures for the unit agent: a real PulseAudio with null sinks, a real Mosquitto, the conformance
kit's controller side (devices/conformance/harness.py) and a spoken bulletin (espeak-ng, MP3)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import pytest_asyncio

from devices.broker import BrokerProcess, mosquitto_path
from devices.conformance.harness import Bcast, Harness
from devices.framing import chunk_audio
from devices.messages import now_ms
from devices.mqtt import BrokerAddress
from firmware_sim.unit.agent import UnitAgent
from firmware_sim.unit.state import AudioSettings, PowerSettings, UnitConfig
from tests.firmware_sim.unit.sound import PulseServer
from tts.audio import OPUS_SAMPLE_RATE

TEXT = "Thông báo của ủy ban nhân dân phường: lịch tiêm chủng cho trẻ em vào sáng thứ bảy tuần này."


@pytest.fixture(scope="session")
def pulse() -> Iterator[PulseServer]:
    with PulseServer(("lp_a", "lp_b", "lp_c")) as server:
        yield server


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerAddress]:
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto)")
    with BrokerProcess("mosquitto") as b:
        yield BrokerAddress(host="127.0.0.1", port=b.port)


@pytest.fixture(scope="session")
def bulletin() -> bytes:
    return speech("mp3")


@pytest.fixture(scope="session")
def opus_bulletin() -> bytes:
    """The same speech as the controller sends it when a ward's speech settings choose ``opus``."""
    return speech("opus")


def speech(codec: str) -> bytes:
    from tts.audio import encode
    from tts.espeak import EspeakEngine

    return encode(EspeakEngine().synthesize(TEXT, voice="vi", speed=1.0), codec=codec)


@pytest.fixture
def prefix() -> str:
    return f"u{secrets.token_hex(4)}"


def unit_config(node_id: str, broker: BrokerAddress, prefix: str, **kw: Any) -> UnitConfig:
    audio = kw.pop("audio", AudioSettings(output="null"))
    power = kw.pop("power", PowerSettings())
    return UnitConfig(node_id=node_id, prefix=prefix, brokers=[f"{broker.host}:{broker.port}"],
                      heartbeat_s=1.0, telemetry_s=5.0, audio=audio, power=power, **kw)


@pytest_asyncio.fixture
async def agents(tmp_path: Path) -> AsyncIterator[Callable[..., UnitAgent]]:
    made: list[UnitAgent] = []

    def make(cfg: UnitConfig, state: str = "", **kw: Any) -> UnitAgent:
        agent = UnitAgent(tmp_path / (state or cfg.node_id), cfg, **kw)
        made.append(agent)
        return agent

    yield make
    for a in made:
        await a.stop("test over")


@pytest_asyncio.fixture
async def harnesses(broker: BrokerAddress, prefix: str) -> AsyncIterator[Callable[..., Any]]:
    made: list[Harness] = []

    async def make(unit: str) -> Harness:
        h = Harness(broker, unit, prefix=prefix, timeout_s=30.0)
        assert await h.start(), f"the harness could not connect to {broker}"
        made.append(h)
        return h

    yield make
    for h in made:
        await h.stop()


@dataclass
class Rig:
    """Everything a unit test needs: the sound server, the broker, agents and their harnesses."""

    pulse: PulseServer
    broker: BrokerAddress
    prefix: str
    agents: Callable[..., UnitAgent]
    harnesses: Callable[..., Any]

    async def unit(self, node_id: str, sink: str, *, mixer: str = "software", volume: int = 100,
                   server: str | None = None, **kw: Any) -> tuple[UnitAgent, Harness]:
        """A started agent playing on ``sink``, its clock synchronised, and its harness."""
        h = await self.harnesses(node_id)
        await h.config(groups=[], volume=volume)
        audio = AudioSettings(output="pulse", server=server or self.pulse.server, sink=sink, mixer=mixer)
        cfg_kw = {k: kw.pop(k) for k in ("power", "username", "password") if k in kw}
        agent = self.agents(unit_config(node_id, self.broker, self.prefix, audio=audio, **cfg_kw), **kw)
        await agent.start(wait=True)
        synced = await h.wait(lambda: agent.node.sync.offset_ms is not None, 20)
        assert synced, "the unit never synchronised its clock with the controller's"
        return agent, h


@pytest.fixture
def rig(pulse: PulseServer, broker: BrokerAddress, prefix: str, agents: Callable[..., UnitAgent],
        harnesses: Callable[..., Any]) -> Rig:
    return Rig(pulse, broker, prefix, agents, harnesses)


def spoken(h: Harness, audio: bytes, duration_ms: int, *, repeat: int = 1, priority: str = "normal",
           tag: str = "b", codec: Literal["mp3", "opus"] = "mp3") -> Bcast:
    """A held broadcast of ``audio`` for the harness's unit (played by a ``play`` command)."""
    rate = OPUS_SAMPLE_RATE if codec == "opus" else 22050
    info, frames = chunk_audio(audio, duration_ms=duration_ms, chunk_size=4096, codec=codec, sample_rate=rate)
    bc = h.new_id(tag)
    manifest = {"v": 1, "ts": now_ms(), "bc": bc, "title": "thông báo", "priority": priority,
                "play_at": None, "expires_at": now_ms() + 600_000, "repeat": repeat, "hold": True,
                "audio": info.model_dump()}
    return Bcast(bc, manifest, frames, duration_ms)
