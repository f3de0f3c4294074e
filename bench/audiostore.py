"""The audio store's cost on the airing path: what reading a bulletin's audio costs now that it lives
in the database behind a local cache (controller/core/audiostore.py).

    python bench/audiostore.py                       # SQLite, and PostgreSQL when reachable
    python bench/audiostore.py --sizes 120000 --rounds 5

For each size (default: a 30 s bulletin at 32 kb/s, 120 KB; a 10 min recording, 2.4 MB) and each
database: ``put`` (a controller storing new audio), a cold ``get`` by another controller with an
empty data directory (one database read, then written to its cache) and a warm ``get`` (the cache
file read and its SHA-256 checked), median of ``--rounds``. Baseline in the same run: a bare
``Path.read_bytes`` of the same file, what ``load_active`` did before the store. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from controller.core.audiostore import DbAudioStore, digest  # noqa: E402
from controller.core.db import Database  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 3)


def measure(db: Database, work: Path, size: int, rounds: int) -> dict[str, Any]:
    puts, colds = [], []
    for i in range(rounds):  # new audio each round: every put writes, every cold get reads the database
        data = os.urandom(size)
        sha = digest(data)
        writer = DbAudioStore(db, work / f"w{size}-{i}")
        t0 = time.perf_counter()
        writer.put(data, sha256=sha, codec="mp3", duration_ms=size // 4)
        puts.append((time.perf_counter() - t0) * 1000)
        reader = DbAudioStore(db, work / f"r{size}-{i}")  # another controller, empty data dir
        t0 = time.perf_counter()
        assert reader.get(sha) == data
        colds.append((time.perf_counter() - t0) * 1000)
    warm = median_ms(lambda: reader.get(sha), rounds * 4)
    raw_file = reader.cache_path(sha, "mp3")
    raw = median_ms(raw_file.read_bytes, rounds * 4)
    return {"bytes": size, "put_ms": round(statistics.median(puts), 3),
            "cold_get_ms": round(statistics.median(colds), 3), "warm_get_ms": warm,
            "baseline_read_bytes_ms": raw, "warm_over_baseline": round(warm / raw, 2) if raw else None}


def pg_database() -> tuple[str, Callable[[], None]] | None:
    name = f"lp_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001  (no server here: SQLite only)
        print(f"PostgreSQL not measured: {exc}", file=sys.stderr)
        return None

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[120_000, 2_400_000])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    out: dict[str, Any] = {"bench": "audiostore", "rounds": args.rounds}
    with tempfile.TemporaryDirectory() as d:
        targets: list[tuple[str, str, Callable[[], None] | None]] = [("sqlite", f"sqlite:///{d}/a.db", None)]
        pg = None if args.no_postgres else pg_database()
        if pg is not None:
            targets.append(("postgresql", pg[0], pg[1]))
        for kind, url, drop in targets:
            db = Database(url)
            db.migrate()
            try:
                out[kind] = [measure(db, Path(d) / kind, size, args.rounds) for size in args.sizes]
            finally:
                db.dispose()
                if drop is not None:
                    drop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
