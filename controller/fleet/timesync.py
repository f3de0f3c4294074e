"""Clock sync responder: answers each node's NTP-style request with the controller's clock.

The node sends ``t0`` (its clock); we note ``t1`` on receipt and ``t2`` just before replying.
From its own ``t3`` at arrival the node computes offset ((t1-t0)+(t2-t3))/2 and round-trip
delay (t3-t0)-(t2-t1), keeps the low-delay samples, and converts the controller instants
of ``play`` commands into its own clock (docs/protocol.md §2, §3).
"""

from __future__ import annotations

import logging

from devices import protocol as p
from devices.link import UnitBus
from devices.mqtt import MqttError

logger = logging.getLogger(__name__)


class TimeResponder:
    def __init__(self, link: UnitBus) -> None:
        self.link = link
        self.answered = 0
        link.on("time", self._on_time)

    def _on_time(self, node_id: str, req: p.TimeRequest) -> None:
        t1 = p.now_ms()
        reply = p.TimeReply(node_id=node_id, t0=req.t0, t1=t1, t2=p.now_ms())
        try:
            self.link.publish_nowait(self.link.topics.clock(node_id), p.encode(reply), qos=0)
            self.answered += 1
        except MqttError:
            logger.debug("time reply to %s not sent (no broker link)", node_id)
