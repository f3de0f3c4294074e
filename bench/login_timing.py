"""Login timing: can a guesser tell which user names exist from how long a refusal takes?

    python bench/login_timing.py              # 15 rounds
    python bench/login_timing.py --rounds 40

Against the real app (ASGI, its own SQLite, no broker needed), interleaved in rounds:
``POST /api/login`` for a user name that does not exist, for a disabled user, and for an
existing user with a wrong password. The baseline, measured in the same run, is the old code
path (an unknown or disabled user refused without any Argon2 verification: what made names
tellable, 442 vs 75 ms in the security test of issue 11) and a bare Argon2 verification.
The last line printed is one JSON object (milliseconds, medians).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.accounts.auth import Verifier, hash_password  # noqa: E402
from controller.accounts.models import User  # noqa: E402

PASSWORD = "bench-password"


class OldVerifier(Verifier):
    """The verifier before issue 11: nobody to check against, no hash computed."""

    def check(self, s: Any, username: str, password: str) -> User | None:
        from sqlmodel import select

        user = s.exec(select(User).where(User.username == username)).first()
        if user is None or not user.active:
            return None
        return super().check(s, username, password)


async def measure(rounds: int, data_dir: Path) -> dict[str, float]:
    import httpx

    from controller.app import create_app
    from controller.core.web_settings import LoginSettings
    from controller.fleet.settings import MqttSettings
    from controller.settings import Settings

    settings = Settings(data_dir=data_dir, mqtt=MqttSettings(port=1),  # type: ignore[call-arg]
                        admin_password=PASSWORD, login=LoginSettings(free_failures=100))  # type: ignore[call-arg]
    app = create_app(settings)
    samples: dict[str, list[float]] = {k: [] for k in ("unknown", "disabled", "known_wrong", "old_unknown",
                                                       "old_known_wrong")}
    async with app.router.lifespan_context(app):
        sv = app.state.services
        with sv.db.session() as s:
            for name, active in (("dangdung", True), ("danghi", False)):
                s.add(User(username=name, password_hash=hash_password(PASSWORD + "x"), role="editor",
                           active=active))
            s.commit()
        new, old = sv.verifier, OldVerifier()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://controller") as c:
            async def login(name: str) -> float:
                t0 = time.perf_counter()
                r = await c.post("/api/login", json={"username": name, "password": "wrong-password-1"})
                assert r.status_code == 401, r.text
                return (time.perf_counter() - t0) * 1000

            await login("warmup")
            for i in range(rounds):
                sv.verifier = new
                samples["unknown"].append(await login(f"khongco{i}"))
                samples["disabled"].append(await login("danghi"))
                samples["known_wrong"].append(await login("dangdung"))
                sv.verifier = old
                samples["old_unknown"].append(await login(f"khongco{i}"))
                samples["old_known_wrong"].append(await login("dangdung"))
                sv.login_limiter = type(sv.login_limiter)(settings.login)  # no backoff in the figures
        sv.verifier = new
    from argon2 import PasswordHasher

    ph, h = PasswordHasher(), hash_password(PASSWORD)
    bare = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        try:
            ph.verify(h, "wrong-password-1")
        except Exception:  # noqa: BLE001 - a mismatch is the point
            pass
        bare.append((time.perf_counter() - t0) * 1000)
    out = {f"{k}_ms": round(statistics.median(v), 1) for k, v in samples.items()}
    out["argon2_verify_ms"] = round(statistics.median(bare), 1)
    out["unknown_vs_known_ratio"] = round(out["unknown_ms"] / out["known_wrong_ms"], 2)
    out["old_unknown_vs_known_ratio"] = round(out["old_unknown_ms"] / out["old_known_wrong_ms"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="lp-bench-login-") as tmp:
        result = asyncio.run(measure(max(1, min(args.rounds, 1000)), Path(tmp)))
    result["rounds"] = args.rounds
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
