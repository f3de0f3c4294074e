"""Stopping ``loaphuong demo`` stops everything it started: after SIGINT (Ctrl+C), SIGTERM (a
service manager, ``kill``) or SIGKILL (the demo process dying), no broker or other process the demo
started is left running."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import wait_for

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2])


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")  # a zombie has stopped running


def _started_by(root: int) -> set[int]:
    """Every live process in root's process group or descended from root, root excluded."""
    table = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (st := _stat(int(d))) is not None:
            table[int(d)] = st
    found = {pid for pid, (_, _, pgid) in table.items() if pgid == root}
    grew = True
    while grew:
        kids = {pid for pid, (_, ppid, _) in table.items() if ppid in found | {root}}
        grew = not kids <= found
        found |= kids
    return {pid for pid in found - {root} if _alive(pid)}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
async def test_stopping_the_demo_leaves_no_broker_or_child_running(tmp_path: Path, sig: int) -> None:
    exe = Path(sys.executable).parent / "loaphuong"
    cmd = [str(exe), "demo", "--port", str(_port()), "--broker-port", str(_port()),
           "--data-dir", str(tmp_path)]
    proc = await asyncio.to_thread(
        subprocess.Popen, cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        start_new_session=True, env={**os.environ, "LOAPHUONG_ADMIN_PASSWORD": "demo-password-1"})
    children: set[int] = set()
    try:
        assert proc.stderr is not None
        stderr = proc.stderr

        def banner() -> None:
            while "Ctrl+C to stop" not in (line := stderr.readline()):
                if not line:
                    raise AssertionError("the demo exited before it was up")

        await asyncio.wait_for(asyncio.to_thread(banner), 180)  # a busy machine
        children = _started_by(proc.pid)
        assert children, "the demo runs its broker as a child process"
        proc.send_signal(sig)
        code = await asyncio.to_thread(proc.wait, 60)
        if sig != signal.SIGKILL:
            assert code == 0, f"the demo exits cleanly after {signal.Signals(sig).name}"
        await wait_for(lambda: not any(_alive(p) for p in children), 30,
                       f"the demo's children {sorted(children)} gone after {signal.Signals(sig).name}")
        assert not _started_by(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in children:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
