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
that already timed out still updates the display, because the unit did do it. Duplicate,
unknown-id and unsolicited replies are counted and ignored. Every command is written to the
``nodecommand`` table with its per-node results.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, select

from controller.core.errors import ServiceError
from controller.core.writer import DbWriter
from controller.fleet.models import NodeCommand, NodeSetting
from controller.fleet.presence import Presence
from devices import protocol as p
from devices.link import ControllerLink
from devices.mqtt import MqttError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 120.0
LATE_KEEP = 10_000  # finished command ids remembered to recognise late replies


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
    id: str
    name: str
    sent_at: float
    expected: set[str]
    online: set[str]  # expected nodes that were online when it went out
    group: str | None
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
    def __init__(self, link: ControllerLink, presence: Presence, writer: DbWriter) -> None:
        self.link = link
        self.presence = presence
        self.writer = writer
        self.stats: Counter[str] = Counter()
        self._pending: dict[str, _Pending] = {}
        self._finished: OrderedDict[str, str] = OrderedDict()  # id -> name, for late replies
        link.on("resp", self._on_resp)

    def load(self, s: Session) -> None:
        """Desired volumes into the presence records (published in each node's config)."""
        for row in s.exec(select(NodeSetting)).all():
            live = self.presence.nodes.get(row.node_id)
            if live is not None:
                live.volume = row.volume

    # ------------------------------------------------------------------ sending

    def members(self, zone: str) -> list[str]:
        """Nodes of a zone (``all`` = every node), as the presence registry knows them."""
        return sorted(n for n, live in self.presence.nodes.items() if zone == "all" or zone in live.groups)

    async def run(self, name: str, args: dict[str, Any], *, nodes: list[str] | None = None,
                  zone: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                  by: str = "") -> CommandOutcome:
        """Send a command to ``nodes`` or every node of ``zone`` and wait for the replies."""
        args = validate_args(name, args)
        if (nodes is None) == (zone is None):
            raise ServiceError(422, "give either nodes or a zone")
        if not 0 < timeout_s <= MAX_TIMEOUT_S:
            raise ServiceError(422, f"timeout_s must be within (0, {MAX_TIMEOUT_S:.0f}]")
        if zone is not None:
            targets = self.members(zone)
            if not targets:
                raise ServiceError(409, f"zone {zone} has no units")
        else:
            targets = sorted(set(nodes or []))
            unknown = [n for n in targets if n not in self.presence.nodes]
            if unknown or not targets:
                raise ServiceError(404, f"unknown unit(s): {', '.join(unknown) or '(none given)'}")
        if not self.link.connected:
            raise ServiceError(503, "the MQTT broker is unreachable; the command was not sent")
        cmd_id = f"c-{secrets.token_hex(8)}"
        created = p.now_ms()
        if name == "sync_time":
            args = {"server_ms": created}
        cmd = p.Command(id=cmd_id, name=name, args=args, expires_at=created + int(timeout_s * 1000))
        pending = _Pending(cmd_id, name, time.monotonic(), set(targets),
                           {n for n in targets if self.presence.is_online(n)}, zone)
        self._pending[cmd_id] = pending
        body = p.encode(cmd)
        topics = self.link.topics
        try:
            if zone is not None:
                await self.link.publish(topics.group_cmd(zone), body, qos=1, retain=False)
            else:
                await asyncio.gather(*(self.link.publish(topics.cmd(n), body, qos=1, retain=False)
                                       for n in targets))
            self.stats["sent"] += 1
            pending.check_done()
            try:
                await asyncio.wait_for(pending.done.wait(), timeout_s)
            except TimeoutError:
                pass
        except MqttError as exc:
            self.stats["send_failed"] += 1
            logger.warning("command %s (%s) not sent: %s", cmd_id, name, exc)
            raise ServiceError(503, f"the command could not be sent: {exc}") from None
        finally:
            del self._pending[cmd_id]
            self._finished[cmd_id] = name
            while len(self._finished) > LATE_KEEP:
                self._finished.popitem(last=False)
        results = [pending.replies.get(n) or NodeResult(n, "timeout" if n in pending.online else "offline")
                   for n in targets]
        results += [r for n, r in sorted(pending.replies.items()) if n not in pending.expected]
        target = {"zone": zone} if zone is not None else {"nodes": targets}
        outcome = CommandOutcome(cmd_id, name, args, target, results, created, p.now_ms())
        self._record(outcome, by)
        tally = Counter(r.status for r in results)
        logger.info("command %s %s to %s: %s", cmd_id, name, zone or ",".join(targets[:5]), dict(tally))
        return outcome

    def _record(self, o: CommandOutcome, by: str) -> None:
        row = NodeCommand(id=o.id, name=o.name, args=o.args, target=o.target,
                          results=[r.as_dict() for r in o.results], created_by=by,
                          created_at=o.created_at, finished_at=o.finished_at)
        self.writer.submit(lambda s: s.add(row))

    # ------------------------------------------------------------------ replies

    def _on_resp(self, node_id: str, resp: p.CommandResponse) -> None:
        pending = self._pending.get(resp.id)
        if pending is None:
            name = self._finished.get(resp.id)
            if name is None and resp.id.startswith(("play:", "live_", "relay:")):
                return  # answers to commands of air control, live sessions and relays (their own handlers)
            if name is None:
                self.stats["unknown_id"] += 1
                logger.warning("reply from %s to unknown command id %r ignored", node_id, resp.id[:64])
                return
            self.stats["late"] += 1
            logger.info("late reply from %s to command %s (%s): %s", node_id, resp.id, name, resp.status)
            if resp.status == "ok" and node_id in self.presence.nodes:
                self._apply(node_id, name, resp.data)
            return
        if node_id in pending.replies:
            self.stats["duplicate"] += 1
            return
        if node_id not in pending.expected and (pending.group is None or node_id not in self.presence.nodes):
            self.stats["unsolicited"] += 1
            logger.warning("reply from %s to command %s that was not sent to it; ignored", node_id, resp.id)
            return
        ms = int((time.monotonic() - pending.sent_at) * 1000)
        pending.replies[node_id] = NodeResult(node_id, resp.status, dict(resp.data), resp.error[:500], ms)
        self.stats["replies"] += 1
        if resp.status == "ok":
            self._apply(node_id, pending.name, resp.data)
        pending.check_done()

    def _apply(self, node_id: str, name: str, data: dict[str, Any]) -> None:
        """What an ``ok`` reply means for the node's displayed state (type-checked)."""
        live = self.presence.nodes.get(node_id)
        if live is None:
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
        if upd:
            live.telemetry = {**live.telemetry, **upd}

    def _desired_volume(self, node_id: str, volume: int) -> None:
        """Keep the new volume in the node's retained config, so a republished config keeps it."""
        live = self.presence.nodes[node_id]
        if live.volume == volume:
            return
        live.volume = volume

        def op(s: Session) -> None:
            row = s.get(NodeSetting, node_id) or NodeSetting(node_id=node_id)
            row.volume, row.updated_at = volume, p.now_ms()
            s.add(row)

        self.writer.submit(op)
        task = asyncio.get_running_loop().create_task(self.presence.publish_configs([node_id]))
        task.add_done_callback(_log_failure)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("config republish failed: %s", task.exception())
