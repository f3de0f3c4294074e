"""The amplifier's power line: a GPIO line through libgpiod (the ``gpiod`` package, v2 API), a
command (a USB relay's tool, e.g. ``usbrelay``), or nothing (driver ``none``: the board cannot
switch its amplifier; the unit says so in its birth message and ``doctor``, and ``power`` only
decides whether it plays).

With a fault line wired (an amplifier's thermal/short-circuit output), the unit reports the
telemetry fault ``amp_fault`` while the line is active; a command that fails reports
``amp_power``. Neither stops the unit: what it cannot switch it reports.
"""

from __future__ import annotations

import logging
import subprocess
from typing import Any

from firmware_sim.hardware import NoPower, PowerDriver
from firmware_sim.unit.state import PowerSettings

logger = logging.getLogger(__name__)

AMP_FAULT = "amp_fault"
AMP_POWER = "amp_power"


class PowerSetupError(Exception):
    """The configured power driver cannot work on this board (the message says why)."""


class GpioPower:
    name = "gpio"

    def __init__(self, s: PowerSettings, gpiod: Any = None) -> None:
        if gpiod is None:
            try:
                import gpiod as gpiod_module
            except ImportError as exc:
                raise PowerSetupError("power driver 'gpio' needs libgpiod's Python package: "
                                      "pip install gpiod (or use driver 'none')") from exc
            gpiod = gpiod_module
        self._g = gpiod
        self._s = s
        v = gpiod.line.Value
        self._on, self._off = (v.INACTIVE, v.ACTIVE) if s.active_low else (v.ACTIVE, v.INACTIVE)
        config: dict[int, Any] = {
            s.line: gpiod.LineSettings(direction=gpiod.line.Direction.OUTPUT, output_value=self._off)}
        if s.fault_line is not None:
            config[s.fault_line] = gpiod.LineSettings(direction=gpiod.line.Direction.INPUT,
                                                      active_low=s.fault_active_low)
        try:
            self._req = gpiod.request_lines(s.chip, consumer="loaphuong-unit", config=config)
        except OSError as exc:
            raise PowerSetupError(f"GPIO {s.chip} line {s.line}: {exc} (a board without this GPIO line: "
                                  "use driver 'none')") from exc

    def set(self, on: bool) -> None:
        self._req.set_value(self._s.line, self._on if on else self._off)

    def faults(self) -> list[str]:
        if self._s.fault_line is None:
            return []
        active = self._req.get_value(self._s.fault_line) == self._g.line.Value.ACTIVE
        return [AMP_FAULT] if active else []


class CommandPower:
    name = "command"

    def __init__(self, s: PowerSettings) -> None:
        if not s.on_cmd or not s.off_cmd:
            raise PowerSetupError("power driver 'command' needs on_cmd and off_cmd")
        self._on, self._off = s.on_cmd, s.off_cmd
        self._failed = False

    def set(self, on: bool) -> None:
        argv = self._on if on else self._off
        try:
            subprocess.run(argv, check=True, capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            self._failed = True
            logger.warning("amplifier power %s: %s failed: %s", "on" if on else "off", argv[0], exc)
            return
        self._failed = False

    def faults(self) -> list[str]:
        return [AMP_POWER] if self._failed else []


def make_power(s: PowerSettings) -> PowerDriver:
    if s.driver == "gpio":
        return GpioPower(s)
    if s.driver == "command":
        return CommandPower(s)
    return NoPower()
