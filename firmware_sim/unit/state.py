"""The unit agent's state directory: its configuration (``unit.json``: who it is, its broker
credentials, its sound card and power line) and its flash (what must survive a reboot).

``unit.json`` is written by ``loaphuong unit setup`` with mode 0600 (it holds the broker password)
and read at every start; unknown keys are refused so a typo is an error, not a silent default.
The flash items are files in ``flash/``, each written whole (a temporary file, fsync, rename) so
a power cut never leaves half of one; a write the disk refuses (full, read-only, failing) is
logged, counted as the telemetry fault ``storage_full`` or ``storage_error``, and the unit plays
on.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devices.mqtt import BrokerAddress
from devices.protocol import valid_id

logger = logging.getLogger(__name__)

CONFIG_FILE = "unit.json"
#: Below this much free space the unit reports ``storage_full`` (a bulletin may not fit any more).
LOW_SPACE_KB = 8 * 1024


class BadUnitConfig(Exception):
    """``unit.json`` is missing or wrong: the message says what to fix."""


class AudioSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output: Literal["pulse", "null"] = Field("pulse",
                                             description="pulse = PulseAudio/PipeWire; null = silent")
    server: str | None = Field(None, description="PulseAudio server, e.g. unix:/run/user/1000/pulse/native")
    sink: str | None = Field(None, description="sink name (None = the default sink)")
    rate: int = Field(48000, ge=8000, le=96000)
    mixer: Literal["software", "pulse", "alsa"] = Field("pulse", description="how the volume is set")
    alsa_control: str = "Master"


class PowerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    driver: Literal["none", "gpio", "command"] = "none"
    chip: str = Field("/dev/gpiochip0", description="gpio: the GPIO chip")
    line: int = Field(17, ge=0, description="gpio: the line offset that switches the amplifier")
    active_low: bool = False
    fault_line: int | None = Field(None, ge=0, description="gpio: the amplifier's fault output, if wired")
    fault_active_low: bool = True
    on_cmd: list[str] = Field(default_factory=list, description="command: argv that switches it on")
    off_cmd: list[str] = Field(default_factory=list, description="command: argv that switches it off")


class UnitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node_id: str
    prefix: str = "lp"
    brokers: list[str] = Field(min_length=1, description="host:port of each broker of a cluster, gone round "
                                                         "as a ring (docs/protocol.md 'Several brokers')")
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    heartbeat_s: float = Field(15.0, gt=0)
    telemetry_s: float = Field(60.0, gt=0)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    power: PowerSettings = Field(default_factory=PowerSettings)

    def broker_addresses(self) -> list[BrokerAddress]:
        out = []
        for item in self.brokers:
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit():
                raise BadUnitConfig(f"broker {item!r}: expected host:port")
            out.append(BrokerAddress(host=host, port=int(port), username=self.username,
                                     password=self.password, tls=self.tls, ca_file=self.ca_file))
        return out


def load_config(state_dir: Path) -> UnitConfig:
    path = state_dir / CONFIG_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        cfg = UnitConfig.model_validate(raw)
    except FileNotFoundError as exc:
        raise BadUnitConfig(f"{path} does not exist: run 'loaphuong unit setup' first") from exc
    except (ValueError, ValidationError) as exc:
        raise BadUnitConfig(f"{path} is not a valid unit configuration: {exc}") from exc
    if not valid_id(cfg.node_id):
        raise BadUnitConfig(f"{path}: node_id {cfg.node_id!r} is not a valid unit id")
    cfg.broker_addresses()
    return cfg


def save_config(state_dir: Path, cfg: UnitConfig) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / CONFIG_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(cfg.model_dump_json(indent=2))
    os.replace(tmp, path)
    return path


class DirFlash:
    """:class:`~firmware_sim.flash.Flash` in ``state_dir/flash``."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "flash"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fault = ""  # "storage_full" / "storage_error" after a refused write, until one succeeds
        self._failing: set[str] = set()  # items whose last write failed: logged once, not at every retry

    def get(self, name: str) -> bytes | None:
        try:
            return (self.dir / name).read_bytes()
        except OSError:
            return None

    def put(self, name: str, data: bytes) -> bool:
        path = self.dir / name
        tmp = self.dir / f".{name}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            self.fault = "storage_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "storage_error"
            level = logging.DEBUG if name in self._failing else logging.WARNING
            logger.log(level, "flash: cannot write %s: %s", name, exc)
            self._failing.add(name)
            try:
                tmp.unlink()
            except OSError:
                pass
            return False
        if name in self._failing:
            self._failing.discard(name)
            logger.info("flash: %s written again", name)
        self.fault = ""
        return True

    def free_kb(self) -> int | None:
        try:
            return shutil.disk_usage(self.dir).free // 1024
        except OSError:
            return None
