"""``loaphuong unit run``: one loudspeaker unit on a Linux board.

The agent is the simulator's node (:class:`~firmware_sim.node.SimNode`, so every node-side rule of
docs/protocol.md is the one implementation the simulator and the conformance kit already prove)
built with real parts: the sound card (:class:`~firmware_sim.unit.pulse.PulseOutput`), the
amplifier's power line (:mod:`~firmware_sim.unit.power`), the board's readings
(:class:`~firmware_sim.unit.board.LinuxBoard`) and the state directory's flash
(:class:`~firmware_sim.unit.state.DirFlash`: the finished-broadcast memory, the attention tone,
the last power and volume, the broadcast playing now: :mod:`~firmware_sim.unit.noted`). Its
clock is the board's, disciplined by the contract's time sync (every instant the controller names
is mapped through the sync's offset, so a board without an RTC that booted at 1970 still plays on
the instant once the first exchange is done).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from firmware_sim.faults import Faults
from firmware_sim.hardware import AudioOutput, Hardware, SleepOutput
from firmware_sim.node import SimNode
from firmware_sim.playlog import PlayLog
from firmware_sim.unit.board import LinuxBoard
from firmware_sim.unit.mixer import make_mixer
from firmware_sim.unit.noted import NotedOutput, power_cut
from firmware_sim.unit.power import make_power
from firmware_sim.unit.pulse import PulseOutput, PulseTarget
from firmware_sim.unit.state import DirFlash, UnitConfig, load_config

logger = logging.getLogger(__name__)

FW = "loaphuong-unit-1.0"
SETTINGS = "settings.json"  # flash: the last power and volume


def make_output(cfg: UnitConfig) -> AudioOutput:
    a = cfg.audio
    if a.output == "null":
        return SleepOutput(1.0)
    mixer = make_mixer(a.mixer, sink=a.sink, server=a.server, control=a.alsa_control)
    return PulseOutput(PulseTarget(server=a.server, sink=a.sink, rate=a.rate), mixer=mixer)


class UnitAgent:
    """One unit (see the module docstring)."""

    def __init__(self, state_dir: Path, cfg: UnitConfig | None = None, *,
                 clock_offset_ms: int = 0, output: AudioOutput | None = None) -> None:
        self.state_dir = state_dir
        self.cfg = cfg = cfg if cfg is not None else load_config(state_dir)
        brokers = cfg.broker_addresses()
        self.flash = DirFlash(state_dir)
        power = make_power(cfg.power)
        self.output = output if output is not None else make_output(cfg)
        board = LinuxBoard(self.flash, brokers[0].host)
        self.hardware = Hardware(output=NotedOutput(self.output, self.flash), amp=power, board=board,
                                 flash=self.flash, hw=LinuxBoard.kind(power.name))
        saved = self._saved()
        faults = Faults(power_on=bool(saved.get("power", True)), clock_offset_ms=clock_offset_ms,
                        storage_kb=64 * 1024)  # RAM for bulletins waiting to play
        self.node = SimNode(
            cfg.node_id, brokers, prefix=cfg.prefix, heartbeat_s=cfg.heartbeat_s,  # §1 "Several brokers"
            telemetry_s=cfg.telemetry_s, fw=FW, faults=faults, time_scale=1.0, keep_audio=False,
            play_log=PlayLog(state_dir / "play.log"), hardware=self.hardware,
        )
        power_cut(self.flash, self.node.finished)  # what played when the power went is power_off
        volume = saved.get("volume", 70)
        self.node.player.set_volume(volume if isinstance(volume, int) and 0 <= volume <= 100 else 70)
        self._kept = (self.node.player.power, self.node.player.volume)
        self._keeper: asyncio.Task[None] | None = None

    def _saved(self) -> dict[str, object]:
        raw = self.flash.get(SETTINGS)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            logger.warning("the stored power/volume settings are unreadable: using the defaults")
            return {}
        return data if isinstance(data, dict) else {}

    def _wire(self) -> None:
        """Faults an output thread sees reach the telemetry at once (on the event loop)."""
        loop = asyncio.get_running_loop()

        def changed() -> None:
            loop.call_soon_threadsafe(self.node.player.hardware_changed)

        if isinstance(self.output, PulseOutput):
            self.output.on_change = changed

    async def start(self, *, wait: bool = False) -> None:
        self._wire()
        logger.info("unit %s (%s, %s) connecting to %s", self.cfg.node_id, self.hardware.hw,
                    type(self.output).__name__, ", ".join(self.cfg.brokers))
        await self.node.start(wait=wait)
        self._keeper = asyncio.create_task(self._keep_settings(), name=f"keep-{self.cfg.node_id}")

    async def stop(self, reason: str = "") -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None
        self._store_settings()
        await self.node.stop(reason)

    async def _keep_settings(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._store_settings()

    def _store_settings(self) -> None:
        now = (self.node.player.power, self.node.player.volume)
        if now != self._kept:
            if self.flash.put(SETTINGS, json.dumps({"power": now[0], "volume": now[1]}).encode()):
                self._kept = now

    async def run_forever(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop("shutdown")
