"""Who runs a relay: one owning controller per relay not ended, a ``relay_owner`` lease row.

The machinery of the broadcasts' lease (controller/airing/ownership.py, custody.py) on its own
table: holder = the controller's instance id, expiry on the database clock, taken by
compare-and-set (``holder = me OR expires_at < now``), renewed in one ``UPDATE`` every
``relay.beat_s``; a relay whose owner died (SIGKILL, a lost database or broker) is taken by another
controller at most ``owner_ttl_s + beat_s`` after the owner's last renewal. The controller that
makes a relay (the API, a schedule slot) writes its row in the same transaction as the relay's.

Each renewal (and take) also writes ``relay.owner_seen_at`` (database clock, ms) of the relays it
holds: the owner's last renewal, shown with the relay (GET /api/relays/{id}) and read by the
controller that takes a dead owner's relay over, which records how long after that renewal it
took it (``takeover_s`` in the relay's figures; controller/relays/hub.py).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from controller.airing.ownership import Ownership, Reach

#: Relays not ended without a live owner (no row, an expired one) or ours; emergencies first.
RELAYS = ("SELECT r.id FROM relay r LEFT JOIN {table} o ON o.{key} = r.id "
          "WHERE r.state IN ('scheduled', 'waiting', 'playing', 'interrupted') "
          "AND (o.{key} IS NULL OR o.expires_at < {now} OR o.holder = :me) "
          "ORDER BY CASE r.priority WHEN 'emergency' THEN 0 ELSE 1 END, r.created_at")
#: The owner's last renewal on the relays it holds and runs (not ended), in the renewal's
#: transaction. ``owner = :me``: a relay just taken keeps its dead owner's last renewal until the
#: taker has read it and put its own name (the hub's adoption).
BEAT = ("UPDATE relay SET owner_seen_at = {now} WHERE owner = :me AND state IN ('scheduled', 'waiting', "
        "'playing', 'interrupted') AND id IN (SELECT relay_id FROM relay_owner WHERE holder = :me)")


def relay_lease(engine: Engine, holder: str, ttl_s: float, *, reach: Reach | None = None) -> Ownership:
    return Ownership(engine, holder, ttl_s, reach=reach, table="relay_owner", key="relay_id", orphans=RELAYS,
                     beat=BEAT)
