"""What the simulated units played, as an append-only JSON-lines log (``loaphuong sim --play-log``).

Every playback start and every playback end of every unit is one line, appended, never
rewritten: a broadcast a unit starts twice shows as two ``start`` lines, whatever happened in
between (a replay, a reboot, a controller restart). One line::

    {"unit": "sim-0003", "bc": "b-20261202-0001", "event": "start", "wall_ms": 1795300200123,
     "node_ms": 1795300200120, "offset_ms": 0, "reason": "", "priority": "emergency", "boot": 2}

``event`` is ``start`` or ``end`` (or ``tone``: an emergency's local attention tone sounded, for
``offset_ms`` ms; it is no play of the broadcast); ``offset_ms`` is where in the audio (all repeats)
the unit started, or, on an ``end``, how far it got; ``reason`` of an ``end`` is ``played`` or why it
stopped (``preempted``, ``stopped``, ``cancelled``, ``power_off``, ``power_loss``); ``boot``
counts the unit's boots. Lines are written with one ``write`` on a file opened ``O_APPEND``, so
several simulator processes may share one log. :func:`read_play_log` reads it back and
:func:`starts` / :func:`double_plays` count it (what the tests assert on).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

Event = Literal["start", "end", "tone"]


@dataclass(frozen=True)
class PlayEvent:
    """One line of the play log."""

    unit: str
    bc: str
    event: Event
    wall_ms: int
    node_ms: int
    offset_ms: int
    reason: str = ""
    priority: str = ""
    boot: int = 0


class PlayLog:
    """Appends :class:`PlayEvent` lines to ``path`` (created with its folder if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0
        self.failed = 0
        self._fd: int | None = None
        self._lock = threading.Lock()

    def record(self, event: PlayEvent) -> None:
        """Append one line now (a small synchronous write: the log must survive a crash)."""
        line = (json.dumps(asdict(event), ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                if self._fd is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                os.write(self._fd, line)
                self.written += 1
            except OSError as exc:
                self.failed += 1
                if self.failed == 1:
                    logger.warning("play log %s: cannot append: %s", self.path, exc)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_play_log(path: Path) -> list[PlayEvent]:
    """Every event of the log in write order ([] if there is no log yet); a torn last line is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    events = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            events.append(PlayEvent(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            logger.warning("play log %s line %d unreadable: %s", path, number, exc)
    return events


def starts(events: list[PlayEvent]) -> Counter[tuple[str, str]]:
    """(unit, bc) → how many times that unit started that broadcast."""
    return Counter((e.unit, e.bc) for e in events if e.event == "start")


def tones(events: list[PlayEvent]) -> Counter[tuple[str, str]]:
    """(unit, bc) → how many times that unit sounded the attention tone of that emergency."""
    return Counter((e.unit, e.bc) for e in events if e.event == "tone")


def double_plays(events: list[PlayEvent]) -> dict[tuple[str, str], int]:
    """The (unit, bc) played more than once, with their count (empty = each at most once).

    A start that resumes a broadcast its unit last ended ``preempted`` (the one exception of
    docs/protocol.md §3 "at most once": the controller resumes it after the emergency) continues
    that play and is not counted again; :func:`starts` counts every start."""
    plays: Counter[tuple[str, str]] = Counter()
    last_end: dict[tuple[str, str], str] = {}
    for e in events:
        key = (e.unit, e.bc)
        if e.event == "tone":
            continue
        if e.event == "end":
            last_end[key] = e.reason
        elif last_end.get(key) != "preempted" or key not in plays:
            plays[key] += 1
    return {key: n for key, n in plays.items() if n > 1}
