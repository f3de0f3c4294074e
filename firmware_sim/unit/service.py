"""``loaphuong unit install-service``: the systemd unit that runs the agent at boot.

The file runs this very installation (the ``loaphuong`` next to the running Python, i.e. the
venv's) with the state directory given; it restarts the agent if it dies, but not in a tight loop
(``RestartSec`` 5 s, at most 10 starts in 5 minutes); a configuration error (exit status 2) is not
restarted at all — it needs a person. Run as a user, it reaches that user's PulseAudio/PipeWire
(``XDG_RUNTIME_DIR``); the user needs lingering (``loginctl enable-linger USER``) to have a sound
server without a login.
"""

from __future__ import annotations

import logging
import pwd
import shutil
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def executable() -> str:
    here = Path(sys.executable).parent / "loaphuong"
    if here.exists():
        return str(here)
    return shutil.which("loaphuong") or f"{sys.executable} -m controller.cli"


def unit_file(state_dir: Path, *, user: str = "") -> str:
    lines = [
        "[Unit]",
        "Description=loaphuong loudspeaker unit agent",
        "Wants=network-online.target",
        "After=network-online.target sound.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={executable()} unit run --state-dir {state_dir.resolve()}",
        "Restart=on-failure",
        "RestartSec=5",
        "RestartPreventExitStatus=2",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=15",
    ]
    if user:
        uid = pwd.getpwnam(user).pw_uid
        lines += [f"User={user}", f"Environment=XDG_RUNTIME_DIR=/run/user/{uid}"]
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def install_service(state_dir: Path, *, user: str, path: Path, show: bool) -> int:
    try:
        text = unit_file(state_dir, user=user)
    except KeyError:
        print(f"loaphuong unit install-service: no such user {user!r}", file=sys.stderr)
        return 2
    if show:
        print(text, end="")
        return 0
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"loaphuong unit install-service: cannot write {path}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}; now: systemctl daemon-reload && systemctl enable --now {path.stem}")
    return 0
