"""The one :class:`~devices.serial.io.GatewayIO` of a serial gateway: MQTT out, acks, timers, children.

:class:`GatewayRuntime` is what :class:`~devices.serial.gateway.SerialGateway` hands its parts.
It holds the MQTT client of the running gateway (set at start, cleared at stop), publishes
through it, sends per-child acks (a final state goes into the child's finished memory),
counts bad payloads, knows the children by node id and tracks the tasks and timers that
stopping the gateway cancels.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

from devices import protocol as p
from devices.mqtt import AsyncMqttClient
from devices.publishing import publish_or_drop
from devices.serial.contract import Child, GatewayConfig

logger = logging.getLogger(__name__)


@dataclass
class GatewayStats:
    msgs_in: int = 0
    payload_errors: int = 0
    handler_errors: int = 0
    unknown_topics: int = 0
    publish_dropped: int = 0
    acks_sent: int = 0
    port_faults: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class GatewayRuntime:
    """Implements :class:`~devices.serial.io.GatewayIO` (see the module docstring)."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.gateway_id = config.gateway_id
        self.topics = p.Topics(config.prefix)
        self.stats = GatewayStats()
        #: The MQTT client while the gateway runs.
        self.mqtt: AsyncMqttClient | None = None
        self.running = False
        self._children = {nid: Child(addr, nid) for addr, nid in sorted(config.children.items())}
        self._boot = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handles: set[asyncio.TimerHandle] = set()

    # ------------------------------------------------------------------ children

    def child(self, node_id: str) -> Child | None:
        return self._children.get(node_id)

    def children(self) -> list[Child]:
        """Every child, in address order."""
        return list(self._children.values())

    def child_ids(self) -> list[str]:
        return list(self._children)

    def members(self, group: str) -> list[Child]:
        return [c for c in self._children.values() if group in c.groups]

    def groups(self) -> set[str]:
        """The groups of all children (the gateway subscribes each once)."""
        return {g for c in self._children.values() for g in c.groups}

    # ------------------------------------------------------------------ clocks, tasks, timers

    def clock_ms(self) -> int:
        return p.now_ms()

    def uptime_s(self) -> int:
        return int(time.monotonic() - self._boot)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.gateway_id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def later(self, delay: float, fn: Callable[..., object], *args: object) -> asyncio.TimerHandle:
        holder: list[asyncio.TimerHandle] = []

        def run() -> None:
            self._handles.discard(holder[0])
            fn(*args)

        holder.append(asyncio.get_running_loop().call_later(delay, run))
        self._handles.add(holder[0])
        return holder[0]

    def cancel_timers(self) -> None:
        for h in self._handles:
            h.cancel()
        self._handles.clear()

    async def halt_tasks(self) -> None:
        """Cancel every task but the caller's and wait (up to 5 s) until they end."""
        me = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not me]
        for t in tasks:
            t.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            if pending:
                logger.error("%s: %d tasks did not stop: %s", self.gateway_id, len(pending),
                             [t.get_name() for t in pending])

    # ------------------------------------------------------------------ MQTT out

    @property
    def connected(self) -> bool:
        return self.mqtt is not None and self.mqtt.is_connected

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> bool:
        if publish_or_drop(self.mqtt, topic, payload, qos=qos, retain=retain, who=self.gateway_id):
            return True
        self.stats.publish_dropped += 1
        return False

    def ack(self, child: Child, bc: str, state: p.AckState, reason: str = "",
            have: int | None = None, attention: str = "") -> None:
        if state in p.FINAL_STATES:
            child.finished.finish(bc, state, reason)
        msg = p.Ack(ts=self.clock_ms(), node_id=child.node_id, bc=bc, state=state, reason=reason, have=have,
                    attention=attention)
        if self.publish(self.topics.ack(child.node_id), p.encode(msg), qos=1):
            self.stats.acks_sent += 1
        logger.debug("%s: ack %s %s %s %s", self.gateway_id, child.node_id, bc, state.value, reason)

    def bad(self, topic: str, why: object) -> None:
        self.stats.payload_errors += 1
        logger.warning("%s: ignored bad payload on %s: %s", self.gateway_id, topic, why)
