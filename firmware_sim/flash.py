"""A unit's non-volatile storage ("flash"): what must survive a power loss or a reboot.

The simulator keeps its "flash" in RAM (it survives the simulated reboots of one process); the
unit agent keeps it in a directory on the board (:class:`firmware_sim.unit.state.DirFlash`). What
goes there: the finished-broadcast memory (docs/protocol.md §3 "at most once": a unit that
rebooted must not play again what it played before) and the attention tone (§1 config
``attention``: checked against the config's SHA-256 when it is needed, fetched again from the
retained config when the stored copy is missing or corrupted) and the last verified files
(:class:`VerifiedInFlash`, §3 "what a unit keeps").
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Protocol

from devices.protocol import AckState, FinishedLog, Manifest

logger = logging.getLogger(__name__)


class Flash(Protocol):
    def get(self, name: str) -> bytes | None:
        """The stored item, or None (never stored, or unreadable)."""
        ...

    def put(self, name: str, data: bytes) -> bool:
        """Store ``data`` whole or not at all; False when it could not (a full or failing disk)."""
        ...


class MemoryFlash:
    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}

    def get(self, name: str) -> bytes | None:
        return self.items.get(name)

    def put(self, name: str, data: bytes) -> bool:
        self.items[name] = data
        return True


class FinishedInFlash(FinishedLog):
    """The finished-broadcast memory, written to flash at every change and read back at boot."""

    NAME = "finished.json"

    def __init__(self, flash: Flash) -> None:
        super().__init__()
        self._flash = flash
        raw = flash.get(self.NAME)
        try:
            for bc, state, reason in json.loads(raw) if raw else []:
                super().finish(str(bc), AckState(state), str(reason))
        except (ValueError, TypeError) as exc:
            logger.warning("the stored finished-broadcast memory is unreadable (%s): starting empty", exc)

    def finish(self, bc: str, state: AckState, reason: str) -> None:
        super().finish(bc, state, reason)
        rows = [[b, s.value, r] for b, (s, r) in self.items()]
        if not self._flash.put(self.NAME, json.dumps(rows).encode()):
            logger.warning("cannot store the finished-broadcast memory (flash full or failing)")


class VerifiedInFlash:
    """The last verified files (§3 "what a unit keeps": file and manifest of each of the last few
    broadcasts verified), written once the SHA-256 matched and read back at boot. ``verified.json``
    lists them oldest first; ``verified-<bc>.json`` / ``.audio`` hold each manifest and file; a file
    whose bytes no longer match its manifest's SHA-256 is dropped at boot, never played."""

    INDEX = "verified.json"

    def __init__(self, flash: Flash) -> None:
        self._flash = flash

    def load(self) -> list[tuple[Manifest, bytes]]:
        raw = self._flash.get(self.INDEX)
        try:
            bcs = [str(bc) for bc in json.loads(raw)] if raw else []
        except (ValueError, TypeError) as exc:
            logger.warning("the stored list of verified files is unreadable (%s): none kept", exc)
            return []
        out = []
        for bc in bcs:
            try:
                m = Manifest.model_validate_json(self._flash.get(f"verified-{bc}.json") or b"")
            except ValueError as exc:
                logger.warning("the stored manifest of %s is unreadable (%s): dropped", bc, exc)
                continue
            audio = self._flash.get(f"verified-{bc}.audio") or b""
            if m.bc != bc or hashlib.sha256(audio).hexdigest() != m.audio.sha256:
                logger.warning("the stored file of %s is damaged: dropped (it is downloaded again)", bc)
                continue
            out.append((m, audio))
        return out

    def store(self, m: Manifest, audio: bytes, keep: list[str], dropped: list[str]) -> None:
        """``m``'s file written, ``keep`` (oldest first, ``m.bc`` included) listed, ``dropped`` emptied."""
        ok = self._flash.put(f"verified-{m.bc}.audio", audio) and self._flash.put(
            f"verified-{m.bc}.json", m.model_dump_json().encode())
        listed = keep if ok else [bc for bc in keep if bc != m.bc]
        if not self._flash.put(self.INDEX, json.dumps(listed).encode()):
            logger.warning("cannot store the list of verified files (flash full or failing)")
        for bc in dropped:
            self._flash.put(f"verified-{bc}.audio", b"")
            self._flash.put(f"verified-{bc}.json", b"")
