"""What a Linux board reports about itself in telemetry: free flash, its address on the way to the
broker, the SoC temperature (``/sys/class/thermal``), and its own faults (a full disk)."""

from __future__ import annotations

import platform
import socket
from pathlib import Path

from firmware_sim.unit.state import LOW_SPACE_KB, DirFlash

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


class LinuxBoard:
    def __init__(self, flash: DirFlash, broker_host: str, thermal: Path = THERMAL) -> None:
        self._flash = flash
        self._host = broker_host
        self._thermal = thermal

    @staticmethod
    def kind(power_driver: str) -> str:
        """NodeState ``hw``: e.g. ``linux-aarch64 power:gpio``."""
        return f"linux-{platform.machine() or 'unknown'} power:{power_driver}"

    def faults(self) -> list[str]:
        out = [self._flash.fault] if self._flash.fault else []
        free = self._flash.free_kb()
        if free is not None and free < LOW_SPACE_KB and "storage_full" not in out:
            out.append("storage_full")
        return out

    def storage_free_kb(self) -> int | None:
        return self._flash.free_kb()

    def ip(self) -> str:
        """The local address the route to the broker leaves from (no packet is sent)."""
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((self._host, 9))
                return str(s.getsockname()[0])
        except OSError:
            return ""

    def temp_c(self) -> float | None:
        try:
            return round(int(self._thermal.read_text().strip()) / 1000.0, 1)
        except (OSError, ValueError):
            return None
