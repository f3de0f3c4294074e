"""A unit's ``failed`` that is not the end: it will play the broadcast later, from its kept file.

Two reasons a unit gives for not playing do not mean it never will (docs/protocol.md §3, the
unit's ``RESUMABLE`` finals, devices/node_rules.py):

* ``preempted`` by an emergency, while air control will restart / resume the broadcast (its policy):
  recorded ``verified`` (:data:`~controller.airing.reconcile.RESUMES`), the broadcast's turn after
  the emergency plays it;
* ``too_late``: its ``play`` reached it after the audio would have been over in step with its zone
  (a unit that came back, or a broker that delivered late: at 500 units on a loaded cluster 319
  of them, docs/scaling.md). It keeps the verified file, so it is recorded ``verified`` again and
  air control gives it a catch-up of its own from the start when its zones are free (as for a
  unit that verified after the turn). At most :data:`LATE_RETRIES` times per unit — a unit that
  cannot play it again (a serial board keeps no file) answers ``too_late`` once more and that is
  final — and never after the broadcast's validity.
"""

from __future__ import annotations

from controller.airing.active import ActiveBroadcast, NodeDelivery
from controller.airing.aircontrol import AirControl
from controller.airing.reconcile import RESUMES
from devices import protocol as p

TOO_LATE = "too_late"
#: A unit's ``too_late`` is turned into a catch-up this many times at most.
LATE_RETRIES = 2
#: What a unit whose play came too late is recorded with while its catch-up is on its way.
CATCHING_UP = "its play came too late; a catch-up from the start follows"


def plays_later(active: ActiveBroadcast, nd: NodeDelivery, reason: str, air: AirControl) -> str:
    """The reason to record the unit ``verified`` with instead of its ``failed``/``reason``, or ``""``
    when the failure is final (see the module docstring)."""
    if reason == "preempted" and air.will_resume(active.id):
        return RESUMES
    if reason == TOO_LATE and nd.late < LATE_RETRIES and p.now_ms() < active.expires_at:
        nd.late += 1
        return CATCHING_UP
    return ""
