"""CPU time of a process and its children (psutil, or /proc without it), and CPU % over a window.

Used by bench/relay.py for the controller, the broker and the raw publisher.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children: live ones and those already waited for."""
    try:
        import psutil
    except ImportError:
        return _proc_cpu_seconds(pid)
    try:
        proc = psutil.Process(pid)
        t = proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.NoSuchProcess:
                pass
        return float(total)
    except psutil.NoSuchProcess:
        return 0.0


def _proc_cpu_seconds(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p: int) -> list[str]:
        raw = Path(f"/proc/{p}/stat").read_text()
        return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on

    def children(p: int) -> list[int]:
        out: list[int] = []
        for task in Path(f"/proc/{p}/task").iterdir():
            with open(task / "children") as f:
                out += [int(c) for c in f.read().split()]
        return out

    try:
        f = stat(pid)
        total = sum(int(x) for x in f[11:15])  # utime stime cutime cstime
        todo = children(pid)
        while todo:
            c = todo.pop()
            try:
                total += sum(int(x) for x in stat(c)[11:13])
                todo += children(c)
            except OSError:
                pass
        return total / tick
    except OSError:
        return 0.0


class CpuWindow:
    """CPU % (of one core) of some processes between ``start`` and ``stop``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = 0.0
        self.c0: dict[str, float] = {}
        self.result: dict[str, float] = {}

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        self.result = {k: round(100 * (cpu_seconds(p) - self.c0[k]) / wall, 1) for k, p in self.pids.items()}
        return self.result
