"""Remote control of loudspeaker units: request/response commands (docs/protocol.md §2).

A command gets a fresh correlation id and an ``expires_at`` (= its timeout), goes out on
``{p}/node/{id}/cmd`` (one publish per named node) or once on ``{p}/group/{zone}/cmd``
(QoS 1, **never retained**), and the caller waits for the nodes' replies on
``{p}/node/{id}/resp``. Each targeted node ends as

* ``ok`` / ``error``: what the node answered (``data`` / ``error`` as it sent them);
* ``timeout``: it was online and did not answer in time;
* ``offline``: it was not online when the command went out and did not answer either.

Only a reply changes what the API shows (its effect is applied to the node's live telemetry
and, for ``volume``, to the desired volume in its retained config); a late reply to a command
that already timed out still updates the display, because the unit did do it. The bus
(:class:`devices.link.UnitBus`) makes the correlation id and hands each reply to the command
that sent it; duplicate and unsolicited replies are counted here and ignored (replies to ids
nobody sent are the bus's ``unknown_id``). Every command is written to the ``nodecommand``
table with its per-node results.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, select

from controller.core.errors import ServiceError
from controller.core.feed import Changes, NoChanges
from controller.core.metrics import Histogram
from controller.core.writer import DbWriter
from controller.fleet.models import NodeCommand, NodeSetting
from controller.fleet.presence import Presence
from controller.fleet.registry import UNIT_SETTING
from devices import protocol as p
from devices.link import UnitBus
from devices.mqtt import MqttError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 120.0


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NoArgs(_Args):
    pass


class PowerArgs(_Args):
    on: bool = Field(description="amplifier on (true) or off (false)")


class VolumeArgs(_Args):
    level: int = Field(ge=0, le=100, description="0..100")


class CancelArgs(_Args):
    bc: p.Id = Field(description="broadcast id")


class StreamArgs(_Args):
    url: str = Field(max_length=500, pattern=r"^https?://[^\s]+$",
                     description="relay stream (Icecast MP3, HLS playlist), http:// or https://")


#: Commands the API may send, and their arguments.
ARGS: dict[str, type[_Args]] = {
    "ping": NoArgs, "power": PowerArgs, "volume": VolumeArgs, "stop": NoArgs, "cancel": CancelArgs,
    "reboot": NoArgs, "play_stream": StreamArgs, "sync_time": NoArgs,
}


def validate_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Checked arguments of command ``name``; ServiceError(422) says what is wrong."""
    model = ARGS.get(name)
    if model is None:
        raise ServiceError(422, f"unknown command {name!r}; known: {', '.join(ARGS)}")
    try:
        return model.model_validate(args).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "args"
        raise ServiceError(422, f"{name}: args.{loc}: {first['msg']}") from None


@dataclass
class NodeResult:
    node_id: str
    status: str  # ok | error | timeout | offline
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    ms: int | None = None  # reply time

    def as_dict(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "status": self.status, "data": self.data, "error": self.error,
                "ms": self.ms}


@dataclass
class _Pending:
    name: str
    sent_at: float
    expected: set[str]
    online: set[str]  # expected nodes that were online when it went out
    group: str | None
    id: str = ""  # the bus's correlation id, once sent
    finished: bool = False  # the caller stopped waiting: what comes now is late
    replies: dict[str, NodeResult] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def check_done(self) -> None:
        if self.online <= self.replies.keys():
            self.done.set()


@dataclass
class CommandOutcome:
    id: str
    name: str
    args: dict[str, Any]
    target: dict[str, Any]
    results: list[NodeResult]
    created_at: int
    finished_at: int


class CommandService:
    def __init__(self, link: UnitBus, presence: Presence, writer: DbWriter,
                 changes: Changes | None = None) -> None:
        self.link = link
        self.changes = changes or NoChanges()  # tells the other controllers of a new desired volume
        self.presence = presence
        self.writer = writer
        self.stats: Counter[str] = Counter()
        self.latency = Histogram()  # sent → each unit's answer, seconds (``GET /metrics``)

    def load(self, s: Session) -> None:
        """Desired volumes into the presence records (published in each node's config)."""
        for row in s.exec(select(NodeSetting)).all():
            self.presence.set_desired_volume(row.node_id, row.volume)

    # ------------------------------------------------------------------ sending

    def members(self, zone: str) -> list[str]:
        """Nodes of a zone (``all`` = every node), as the presence registry knows them."""
        return self.presence.members(zone)

    def _targets(self, nodes: list[str] | None, zone: str | None, timeout_s: float) -> list[str]:
        if (nodes is None) == (zone is None):
            raise ServiceError(422, "give either nodes or a zone")
        if not 0 < timeout_s <= MAX_TIMEOUT_S:
            raise ServiceError(422, f"timeout_s must be within (0, {MAX_TIMEOUT_S:.0f}]")
        if zone is not None:
            targets = self.members(zone)
            if not targets:
                raise ServiceError(409, f"zone {zone} has no units")
            return targets
        targets = sorted(set(nodes or []))
        unknown = [n for n in targets if not self.presence.knows(n)]
        if unknown or not targets:
            raise ServiceError(404, f"unknown unit(s): {', '.join(unknown) or '(none given)'}")
        return targets

    async def run(self, name: str, args: dict[str, Any], *, nodes: list[str] | None = None,
                  zone: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                  by: str = "") -> CommandOutcome:
        """Send a command to ``nodes`` or every node of ``zone`` and wait for the replies."""
        args = validate_args(name, args)
        targets = self._targets(nodes, zone, timeout_s)
        if not self.link.connected:
            raise ServiceError(503, "the MQTT broker is unreachable; the command was not sent")
        created = p.now_ms()
        if name == "sync_time":
            args = {"server_ms": created}
        pending = _Pending(name, time.monotonic(), set(targets),
                           {n for n in targets if self.presence.is_online(n)}, zone)
        scopes = ([p.AudioScope(kind="group", id=zone)] if zone is not None
                  else [p.AudioScope(kind="node", id=n) for n in targets])
        expires_at = created + int(timeout_s * 1000)
        try:
            sent = await self.link.command_acked(scopes, name, args, expires_at=expires_at,
                                                 on_reply=lambda n, r: self._on_reply(pending, n, r))
        except MqttError as exc:
            self.stats["send_failed"] += 1
            logger.warning("command %s not sent: %s", name, exc)
            raise ServiceError(503, f"the command could not be sent: {exc}") from None
        pending.id = sent.id
        self.stats["sent"] += 1
        pending.check_done()
        try:
            await asyncio.wait_for(pending.done.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            pending.finished = True
        return self._outcome(pending, args, targets, zone, created, by)

    def _outcome(self, pending: _Pending, args: dict[str, Any], targets: list[str], zone: str | None,
                 created: int, by: str) -> CommandOutcome:
        results = [pending.replies.get(n) or NodeResult(n, "timeout" if n in pending.online else "offline")
                   for n in targets]
        results += [r for n, r in sorted(pending.replies.items()) if n not in pending.expected]
        target = {"zone": zone} if zone is not None else {"nodes": targets}
        outcome = CommandOutcome(pending.id, pending.name, args, target, results, created, p.now_ms())
        self._record(outcome, by)
        tally = Counter(r.status for r in results)
        logger.info("command %s %s to %s: %s", pending.id, pending.name, zone or ",".join(targets[:5]),
                    dict(tally))
        return outcome

    def _record(self, o: CommandOutcome, by: str) -> None:
        row = NodeCommand(id=o.id, name=o.name, args=o.args, target=o.target,
                          results=[r.as_dict() for r in o.results], created_by=by,
                          created_at=o.created_at, finished_at=o.finished_at)
        self.writer.submit(lambda s: s.add(row))

    # ------------------------------------------------------------------ replies

    def _on_reply(self, pending: _Pending, node_id: str, resp: p.CommandResponse) -> None:
        """A unit's reply to one of our commands (the bus routes it here by its id)."""
        if pending.finished:
            self.stats["late"] += 1
            logger.info("late reply from %s to command %s (%s): %s", node_id, resp.id, pending.name,
                        resp.status)
            if resp.status == "ok" and self.presence.knows(node_id):
                self._apply(node_id, pending.name, resp.data)
            return
        if node_id in pending.replies:
            self.stats["duplicate"] += 1
            return
        if node_id not in pending.expected and (pending.group is None or not self.presence.knows(node_id)):
            self.stats["unsolicited"] += 1
            logger.warning("reply from %s to command %s that was not sent to it; ignored", node_id, resp.id)
            return
        ms = int((time.monotonic() - pending.sent_at) * 1000)
        self.latency.observe(ms / 1000)
        pending.replies[node_id] = NodeResult(node_id, resp.status, dict(resp.data), resp.error[:500], ms)
        self.stats["replies"] += 1
        if resp.status == "ok":
            self._apply(node_id, pending.name, resp.data)
        pending.check_done()

    def _apply(self, node_id: str, name: str, data: dict[str, Any]) -> None:
        """What an ``ok`` reply means for the node's displayed state (type-checked)."""
        if not self.presence.knows(node_id):
            return
        upd: dict[str, Any] = {}
        power, volume, offset = data.get("power"), data.get("volume"), data.get("offset_ms")
        if name == "power" and isinstance(power, bool):
            upd["power"] = power
        elif name == "volume" and isinstance(volume, int) and _is_int(volume) and 0 <= volume <= 100:
            upd["volume"] = volume
            self._desired_volume(node_id, volume)
        elif name == "stop":
            upd.update(playing="", source="idle")
        elif name == "play_stream" and isinstance(data.get("playing"), str):
            upd.update(playing=data["playing"][:500], source="relay")
        elif name == "sync_time" and (offset is None or _is_int(offset)):
            upd["clock_offset_ms"] = offset
        elif name == "ping" and _is_int(data.get("uptime_s")):
            upd["uptime_s"] = data["uptime_s"]
        elif name in ("power", "volume", "play_stream", "sync_time", "ping"):
            self.stats["bad_reply_data"] += 1
            logger.warning("reply from %s to %s has unexpected data %r; display unchanged",
                           node_id, name, str(data)[:200])
        self.presence.confirmed(node_id, upd)

    def _desired_volume(self, node_id: str, volume: int) -> None:
        """Keep the new volume in the node's retained config, so a republished config keeps it."""
        if not self.presence.set_desired_volume(node_id, volume):
            return

        def op(s: Session) -> None:
            row = s.get(NodeSetting, node_id) or NodeSetting(node_id=node_id)
            row.volume, row.updated_at = volume, p.now_ms()
            s.add(row)
            self.changes.emit(s, UNIT_SETTING, node_id)  # in the same transaction

        self.writer.submit(op)
        task = asyncio.get_running_loop().create_task(self.presence.publish_configs([node_id]))
        task.add_done_callback(_log_failure)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("config republish failed: %s", task.exception())
