"""Who delivers a broadcast: one owning controller per broadcast on its way, a lease row per broadcast.

The mechanism of the scheduler's lease (scheduler/lease.py) applied to each broadcast: a
``broadcast_owner`` row names the holder (the controller's instance id) and an expiry on the
**database's clock**. The controller that claims a broadcast (``scheduled`` → ``sending``)
writes its row in the same transaction; it renews all of its rows in one ``UPDATE`` every
``owner_renew_s``; a broadcast still ``sending``/``active`` whose row expired (its owner died or
lost the database) is taken by another controller with a compare-and-set (``holder = me OR
expires_at < now``). Locally the owner trusts its rows only until ``(monotonic time the renewal
was sent) + ttl − margin``: when renewals fail it gives its broadcasts up before anyone else can
take them, so no broadcast is ever delivered by two controllers at once.

Every method blocks (SQL); callers run them in a worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from controller.airing.models import BroadcastStatus
from scheduler.lease import db_now_sql

logger = logging.getLogger(__name__)

ON_THE_WAY = (BroadcastStatus.SENDING.value, BroadcastStatus.ACTIVE.value)


Reach = Callable[[], bool]
"""``reach()``: can this controller reach its units now (its broker passes its own probe back)?"""


#: The broadcasts on their way without a live owner (no row, an expired one) or ours; ``{now}`` is
#: the database clock, ``{table}``/``{key}`` the lease table. Emergencies first (takeover.py: their
#: zones back first).
BROADCASTS = ("SELECT b.id FROM broadcast b LEFT JOIN {table} o ON o.{key} = b.id "
              "WHERE b.status IN ('sending', 'active') "
              "AND (o.{key} IS NULL OR o.expires_at < {now} OR o.holder = :me) "
              "ORDER BY CASE b.priority WHEN 'emergency' THEN 0 ELSE 1 END")


class Ownership:
    """The leases of one kind of item (``table``, keyed by ``key``): broadcasts by default; relays
    and live sessions use the same machinery with their own table and orphan query (``orphans``).
    ``beat``: a statement run in the transaction of every renewal, take and claim (``{now}`` the
    database clock, ``:me`` the holder): the relays' ``owner_seen_at`` (controller/relays/lease.py)."""

    def __init__(self, engine: Engine, holder: str, ttl_s: float, *, reach: Reach | None = None,
                 table: str = "broadcast_owner", key: str = "broadcast_id",
                 orphans: str = BROADCASTS, beat: str | None = None) -> None:
        self.engine = engine
        self.holder = holder
        self.reach: Reach = reach or (lambda: True)  # no broker, no claim: what we hold is not delivered
        self.ttl_ms = int(ttl_s * 1000)
        self.margin_s = min(1.0, ttl_s * 0.1)
        self._valid_until = 0.0  # monotonic
        self._lock = threading.Lock()
        now = db_now_sql(engine)
        t, k = table, key
        # take or renew one row: insert it, or move it to us if it is ours or has expired
        self._sql_take = text(
            f"INSERT INTO {t} ({k}, holder, expires_at, epoch) "
            f"VALUES (:bc, :me, {now} + :ttl, 1) ON CONFLICT ({k}) DO UPDATE SET "
            f"holder = :me, expires_at = {now} + :ttl, epoch = CASE WHEN {t}.holder = :me "
            f"THEN {t}.epoch ELSE {t}.epoch + 1 END "
            f"WHERE {t}.holder = :me OR {t}.expires_at < {now}")
        self._sql_renew = text(f"UPDATE {t} SET expires_at = {now} + :ttl WHERE holder = :me")
        self._sql_mine = text(f"SELECT {k} FROM {t} WHERE holder = :me")
        self._sql_orphans = text(orphans.format(table=t, key=k, now=now))
        self._sql_release = text(f"DELETE FROM {t} WHERE {k} = :bc AND holder = :me")
        self._sql_release_all = text(f"UPDATE {t} SET expires_at = 0 WHERE holder = :me")
        self._sql_owner = text(f"SELECT holder, expires_at, epoch, {now} FROM {t} WHERE {k} = :bc")
        self._sql_beat = None if beat is None else text(beat.format(now=now))
        self._sql_now = text(f"SELECT {now}")

    # ------------------------------------------------------------------ local belief

    def valid(self) -> bool:
        """Are our rows surely ours right now (no other controller can have taken one)?"""
        return time.monotonic() < self._valid_until

    def remaining_s(self) -> float:
        return max(0.0, self._valid_until - time.monotonic())

    def _trusted(self, sent: float) -> None:
        self._valid_until = max(self._valid_until, sent + self.ttl_ms / 1000 - self.margin_s)

    # ------------------------------------------------------------------ rows

    def claim(self, s: Session, broadcast_id: str) -> bool:
        """Take ``broadcast_id`` inside the caller's transaction (the one that claims its row); False
        without writing when the broker is out of reach (another controller then takes it over)."""
        if not self.reach():
            return False
        sent = time.monotonic()
        got = s.connection().execute(self._sql_take, self._args(broadcast_id)).rowcount == 1
        if got:
            self._beat(s.connection())
            self._trusted(sent)
        return got

    def take(self, broadcast_id: str) -> bool:
        """Take an orphaned broadcast (compare-and-set); False if a live owner holds it (or we cannot
        reach the broker)."""
        if not self.reach():
            return False
        with self._lock:
            sent = time.monotonic()
            with self.engine.begin() as c:
                got = c.execute(self._sql_take, self._args(broadcast_id)).rowcount == 1
                if got:
                    self._beat(c)
            if got:
                self._trusted(sent)
            return got

    def renew(self) -> set[str]:
        """Renew every row we hold; the broadcasts we still hold (one taken from us is missing).
        Raises on a database error (then :meth:`valid` turns false by itself)."""
        with self._lock:
            sent = time.monotonic()
            with self.engine.begin() as c:
                c.execute(self._sql_renew, {"me": self.holder, "ttl": self.ttl_ms})
                self._beat(c)
                mine = self._mine(c)
            self._trusted(sent)
            return mine

    def _beat(self, c: Connection) -> None:
        if self._sql_beat is not None:
            c.execute(self._sql_beat, {"me": self.holder})

    def _mine(self, c: Connection) -> set[str]:
        return {str(r[0]) for r in c.execute(self._sql_mine, {"me": self.holder})}

    def orphans(self) -> list[str]:
        """Broadcasts on their way whose owner is gone (no row, an expired one) or is us."""
        with self.engine.connect() as c:
            return [str(r[0]) for r in c.execute(self._sql_orphans, {"me": self.holder})]

    def release(self, broadcast_id: str) -> None:
        """The broadcast is over (done, expired, cancelled): its row goes."""
        with self.engine.begin() as c:
            c.execute(self._sql_release, {"bc": broadcast_id, "me": self.holder})

    def release_in(self, s: Session, broadcast_id: str) -> None:
        """:meth:`release` inside the caller's transaction (the one that finishes the broadcast)."""
        s.connection().execute(self._sql_release, {"bc": broadcast_id, "me": self.holder})

    def release_all(self) -> None:
        """A clean shutdown: our rows expire now, so another controller takes them at its next scan."""
        self._valid_until = 0.0
        with self.engine.begin() as c:
            c.execute(self._sql_release_all, {"me": self.holder})

    def owner_of(self, broadcast_id: str) -> dict[str, object] | None:
        """The row as the database has it (holder, expires_at, epoch, db_now), None without one."""
        with self.engine.connect() as c:
            row = c.execute(self._sql_owner, {"bc": broadcast_id}).first()
        if row is None:
            return None
        return {"holder": row[0], "expires_at": row[1], "epoch": row[2], "db_now": row[3]}

    def db_now_ms(self) -> int:
        """The database's clock (epoch ms), the one the leases are on."""
        with self.engine.connect() as c:
            return int(c.execute(self._sql_now).scalar_one())

    def _args(self, broadcast_id: str) -> dict[str, object]:
        return {"bc": broadcast_id, "me": self.holder, "ttl": self.ttl_ms}
