"""What a controller does with a broadcast it rebuilt from the database (after its restart, or
taken over from a controller that died: delivery's ``adopt``), once its broker link is up: who of
its units still has to hear it, and how.

* sounding when the controller stopped (a unit reported ``playing``): air control takes it back at
  that instant (:meth:`~controller.airing.aircontrol.AirControl.rejoin`) and the units that had not
  started it join in step;
* not sounding yet, or its zones are taken now: offered as usual;
* **pre-empted for good** by an emergency before the restart (a unit of it is ``failed`` /
  ``preempted``, read from its rows — or reported so after the restart, the unit re-sending its
  final state for the manifest it got again), or sounding when the controller stopped with a
  restored emergency now in its zones (policy drop): none of its units may sound it any more. Air
  control holds it as dropped (:meth:`~controller.airing.aircontrol.AirControl.adopt_dropped`), so
  reconcile records its units that had not started it ``preempted`` and sends a unit still
  ``playing`` it the ``stop`` again — the first one may have been lost, and the controller that
  would have asked again is the one that stopped (docs/protocol.md §3 *when a command is lost*).
"""

from __future__ import annotations

from collections.abc import Callable

from controller.airing.active import ActiveBroadcast
from controller.airing.aircontrol import AirControl
from controller.airing.models import DeliveryState
from devices import protocol as p

S = DeliveryState
PREEMPTED = "preempted"
Offer = Callable[[ActiveBroadcast, list[p.AudioScope]], None]
"""``fn(active, scopes)``: hand the broadcast to air control for those scopes (delivery's offer)."""


def preempted_before(active: ActiveBroadcast) -> bool:
    """A unit of the broadcast ended it ``failed``/``preempted``: an emergency dropped it."""
    return any(nd.state == S.FAILED and nd.reason == PREEMPTED for nd in active.nodes.values())


def drop(active: ActiveBroadcast, air: AirControl) -> None:
    """Hold the broadcast as dropped by an emergency: its unfinished units are stopped / ended."""
    nodes = [n for n, nd in active.nodes.items() if not nd.state.final]
    air.adopt_dropped(active.id, scopes=[p.AudioScope(kind="node", id=n) for n in nodes], nodes=nodes)


def take_back(active: ActiveBroadcast, air: AirControl, offer: Offer) -> None:
    """A restored broadcast air control does not know (see the module docstring)."""
    sounded = active.started_at_ms is not None and active.manifest.priority != p.Priority.EMERGENCY
    if preempted_before(active) or (sounded and air.drops_preempted() and air.emergency_on(
            [n for n, nd in active.nodes.items() if not nd.state.final])):
        drop(active, air)
        return
    waiting = [n for n, nd in active.nodes.items() if nd.state.rank < S.PLAYING.rank]
    scopes = [p.AudioScope(kind="node", id=n) for n in waiting]
    if active.started_at_ms is None or not air.rejoin(  # in step if it sounds
            active.id, at_ms=active.started_at_ms, priority=active.manifest.priority,
            duration_ms=active.duration_ms, scopes=scopes, nodes=waiting):
        offer(active, scopes)


def reported_preempted(active: ActiveBroadcast, node_id: str, air: AirControl) -> None:
    """A unit reported ``failed``/``preempted`` (recorded already) for a broadcast air control does
    not know as pre-empted: if the broadcast was restored after a restart, the emergency came
    before it — drop it. (A running controller always pre-empts before a unit can say so.)"""
    main, own = air.standing(active.id)
    if active.restored and own.get(node_id, main).dropped_at is None and not air.will_resume(active.id):
        drop(active, air)
