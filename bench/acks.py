"""Acknowledgement writes: what N units × 5 acks of one broadcast cost the controller's database writer.

    python bench/acks.py --units 1000        # default: 5,000 delivery changes
    python bench/acks.py --units 5000        # 25,000

Each ack of a unit is a delivery change (its row's state, reason and time, and one event row).
Measured: the batched writer as delivery uses it (``DbWriter.submit_row`` with
controller/airing/delivery_rows.py ``apply_changes``: one executemany UPDATE and one INSERT per
batch), flushed every ``--batch`` changes as the 0.2 s flusher would see them arrive. Baseline in
the same run, on a copy of the same database: the per-row ORM operation delivery used before (get
the row, update it, add the event; flushed per row inside the same batches). CPU seconds of this
process (the writer's thread included) and wall seconds. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import Session, select  # noqa: E402

from controller.airing.broadcasts import create_broadcast  # noqa: E402
from controller.airing.delivery_rows import DeliveryChange, apply_changes  # noqa: E402
from controller.airing.models import Delivery, DeliveryEvent  # noqa: E402
from controller.bulletins.models import Bulletin  # noqa: E402
from controller.bulletins.render import store_audio  # noqa: E402
from controller.core.audiostore import DbAudioStore  # noqa: E402
from controller.core.db import Database  # noqa: E402
from controller.core.writer import DbWriter  # noqa: E402
from controller.fleet.models import Node, NodeZone, Zone  # noqa: E402

STATES = ("sent", "receiving", "verified", "playing", "played")
AUDIO = bytes(range(256)) * 64


def seed(path: Path, audio_dir: Path, units: int) -> dict[str, int]:
    """A database with ``units`` units in one zone and one broadcast to them; node → delivery id."""
    db = Database(f"sqlite:///{path}")
    db.migrate()
    sha = hashlib.sha256(AUDIO).hexdigest()
    with db.session() as s:
        s.add(Zone(id="z", name="z"))
        s.add_all([Node(id=f"u-{i:05d}") for i in range(units)])
        s.flush()
        s.add_all([NodeZone(node_id=f"u-{i:05d}", zone_id="z") for i in range(units)])
        store_audio(s, DbAudioStore(db, audio_dir), data=AUDIO, sha256=sha, codec="mp3", duration_ms=3000,
                    sample_rate=22050, bitrate_kbps=32, engine="bench", voice="bench")
        b = Bulletin(title="t", text="t", voice="bench", audio_sha256=sha, approval="approved",
                     approved_sha256=sha)
        s.add(b)
        s.commit()
        assert b.id is not None
        bc = create_broadcast(s, bulletin_id=b.id, all_nodes=False, zones=["z"], nodes=[],
                              priority="emergency", air_at=None, valid_s=600, repeat=1, created_by="bench")
        ids = {d.node_id: d.id for d in s.exec(select(Delivery).where(Delivery.broadcast_id == bc.id))}
    db.dispose()
    return {n: i for n, i in ids.items() if i is not None}


def per_row_op(did: int, state: str, at: int) -> Any:
    """The operation delivery submitted per ack before the bulk rows (the baseline)."""
    def op(s: Session) -> None:
        d = s.get(Delivery, did)
        if d is None:
            return
        d.state, d.reason, d.updated_at = state, "", at
        s.add(d)
        s.add(DeliveryEvent(delivery_id=did, state=state, reason="", at=at))
        s.flush()
    return op


async def run(path: Path, ids: dict[str, int], batch: int, bulk: bool) -> tuple[float, float]:
    """(CPU s, wall s) to write every unit's 5 changes, ``batch`` at a time."""
    db = Database(f"sqlite:///{path}")
    writer = DbWriter(db)
    changes = [(did, state, 1000 + k) for k, state in enumerate(STATES) for did in ids.values()]
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(0, len(changes), batch):
        for did, state, at in changes[i:i + batch]:
            if bulk:
                writer.submit_row(apply_changes, DeliveryChange(did, state, "", at))
            else:
                writer.submit(per_row_op(did, state, at))
        assert await writer.flush()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    with db.session() as s:
        assert {d.state for d in s.exec(select(Delivery)).all()} == {"played"}
    db.dispose()
    return cpu, wall


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lp-acks-") as tmp:
        base = Path(tmp) / "base.db"
        ids = seed(base, Path(tmp) / "audio", args.units)
        shutil.copy(base, Path(tmp) / "bulk.db")
        shutil.copy(base, Path(tmp) / "rows.db")
        bulk_cpu, bulk_wall = await run(Path(tmp) / "bulk.db", ids, args.batch, bulk=True)
        rows_cpu, rows_wall = await run(Path(tmp) / "rows.db", ids, args.batch, bulk=False)
    n = len(ids) * len(STATES)
    return {"bench": "acks", "units": args.units, "changes": n, "batch": args.batch,
            "bulk_cpu_s": round(bulk_cpu, 3), "bulk_wall_s": round(bulk_wall, 3),
            "per_row_cpu_s": round(rows_cpu, 3), "per_row_wall_s": round(rows_wall, 3),
            "bulk_us_per_ack": round(bulk_cpu / n * 1e6, 1),
            "per_row_us_per_ack": round(rows_cpu / n * 1e6, 1),
            "speedup": round(rows_cpu / bulk_cpu, 1) if bulk_cpu else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=1000, help="changes per writer flush (a 0.2 s batch)")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
