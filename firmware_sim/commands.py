"""Commands on a simulated node (docs/protocol.md §2).

:class:`Commands` is the part of a :class:`~firmware_sim.node.SimNode` that answers
``<prefix>/node/<id>/cmd`` and ``<prefix>/group/<g>/cmd``: it drops expired commands,
ignores a request id answered in the last 10 minutes, runs the handler for the command
name (``ping``, ``power``, ``volume``, ``stop``, ``cancel``, ``reboot``, ``play``,
``play_stream``, ``sync_time``) and publishes one
response (``ok`` with data, or ``error`` with a reason), after ``Faults.ack_delay_s``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devices.protocol import AckState, Command, CommandResponse, PayloadError, decode, encode, valid_id
from firmware_sim.live import LiveReceiver, LiveRejected

if TYPE_CHECKING:
    from firmware_sim.node import SimNode

logger = logging.getLogger(__name__)

CMD_DEDUPE_S = 600.0  # §2: ignore a request id answered in the last 10 minutes
CMD_DEDUPE_MAX = 4096
_PRUNE_EVERY_S = 30.0

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class CommandRejected(Exception):
    """A command the node answers with status "error"."""


class Commands:
    """Dedupe, expiry and the handler table of one node's commands."""

    def __init__(self, node: SimNode) -> None:
        self.node = node
        self._seen: OrderedDict[str, float] = OrderedDict()  # request id -> monotonic time
        self._next_prune = 0.0
        self._handlers: dict[str, Handler] = {
            "ping": self._ping,
            "power": self._power,
            "volume": self._volume,
            "stop": self._stop,
            "cancel": self._cancel,
            "reboot": self._reboot,
            "play": self._play,
            "play_stream": self._play_stream,
            "sync_time": self._sync_time,
        }
        #: URL of the relay stream "playing" (play_stream), '' when none.
        self.stream = ""

    def register_live(self, live: LiveReceiver) -> None:
        """``live_start`` / ``live_stop`` (docs/protocol.md §Live), answered by ``live``."""
        def wrap(fn: Handler) -> Handler:
            def handler(args: dict[str, Any]) -> dict[str, Any]:
                try:
                    return fn(args)
                except LiveRejected as exc:
                    raise CommandRejected(str(exc)) from None
            return handler

        self._handlers["live_start"] = wrap(live.start)
        self._handlers["live_stop"] = wrap(live.stop)

    def on_command(self, topic: str, payload: bytes) -> None:
        node, stats = self.node, self.node.stats
        if node.faults.ignore_commands:
            stats.commands_ignored += 1
            return
        try:
            cmd = decode(Command, payload)
        except PayloadError as exc:
            node._bad(topic, exc)
            return
        if cmd.expires_at is not None and cmd.expires_at < node.controller_ms():
            stats.commands_expired += 1
            logger.info("%s: dropped expired command %s (%s)", node.node_id, cmd.id, cmd.name)
            return
        if cmd.id in self._seen:
            stats.commands_duplicate += 1
            return
        self._seen[cmd.id] = time.monotonic()
        while len(self._seen) > CMD_DEDUPE_MAX:
            self._seen.popitem(last=False)
        stats.commands += 1
        try:
            data = self._execute(cmd)
            status, error = "ok", ""
        except CommandRejected as exc:
            data, status, error = {}, "error", str(exc)
        resp = CommandResponse(ts=node.clock_ms(), id=cmd.id, node_id=node.node_id,
                               status=status, data=data, error=error)  # type: ignore[arg-type]
        topic_out, body = node.topics.resp(node.node_id), encode(resp)
        delay = node.faults.ack_delay_s
        if delay > 0:
            node._later(delay, self._send_resp, topic_out, body)
        else:
            self._send_resp(topic_out, body)
        logger.debug("%s: command %s %s -> %s", node.node_id, cmd.id, cmd.name, status)
        if cmd.name == "reboot" and status == "ok":
            node._spawn(node._reboot(delay + 0.05), f"reboot-{node.node_id}")

    def prune(self, now: float) -> None:
        """Forget request ids older than the dedupe window (at most every 30 s)."""
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY_S
        while self._seen and next(iter(self._seen.values())) < now - CMD_DEDUPE_S:
            self._seen.popitem(last=False)

    def _send_resp(self, topic: str, body: bytes) -> None:
        self.node._publish(topic, body, qos=1)

    def _execute(self, cmd: Command) -> dict[str, Any]:
        handler = self._handlers.get(cmd.name)
        if handler is None:
            raise CommandRejected("unknown command")
        return handler(cmd.args)

    def _reject(self, why: str) -> CommandRejected:
        self.node.stats.payload_errors += 1
        logger.warning("%s: rejected command arguments: %s", self.node.node_id, why)
        return CommandRejected(why)

    # ------------------------------------------------------------------ handlers

    def _ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"uptime_s": self.node.uptime_s()}

    def _power(self, args: dict[str, Any]) -> dict[str, Any]:
        on = args.get("on")
        if not isinstance(on, bool):
            raise self._reject("args.on must be a boolean")
        self.node.player.set_power(on)
        return {"power": on}

    def _volume(self, args: dict[str, Any]) -> dict[str, Any]:
        level = args.get("level")
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 100:
            raise self._reject("args.level must be an integer 0..100")
        self.node._set_volume(level)
        return {"volume": level}

    def _stop(self, args: dict[str, Any]) -> dict[str, Any]:
        """Stop what plays now; with ``bc``, only if that is what plays (``reason`` preempted|stopped)."""
        bc, reason = args.get("bc"), args.get("reason", "stopped")
        if reason not in ("stopped", "preempted"):
            raise self._reject("args.reason must be 'stopped' or 'preempted'")
        player = self.node.player
        if bc is not None and player.playing != bc:
            if isinstance(bc, str) and player.cancel(bc, reason):  # queued with a start time: drop it
                return {"stopped": bc}
            return {"stopped": ""}
        stopped = player.stop_current(reason)
        if bc is None and self.stream:
            stopped, self.stream = stopped or self.stream, ""
            self.node.relay.stop()
            self.node._changed()
        if bc is None and self.node.live.active:
            stopped = stopped or self.node.live.active
            self.node.live.end(reason)
        return {"stopped": stopped}

    def _play_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        """Relay an internet stream (VOV, province station) until ``stop``; bulletins still play."""
        url = args.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 500:
            raise self._reject("args.url must be an http(s) URL of at most 500 characters")
        if not self.node.player.power:
            raise CommandRejected("power_off")
        if url == self.stream and self.node.relay.state:
            return {"playing": url, "source": "relay"}  # already relaying it: no restart, no gap
        self.stream = url
        self.node.relay.start(url)  # firmware_sim/relay.py: fetch it, retry when it drops
        self.node._changed()
        return {"playing": url, "source": "relay"}

    def _sync_time(self, args: dict[str, Any]) -> dict[str, Any]:
        """Start a clock-sync burst now; answer with the offset controller − node as known so far
        (from earlier syncs, else from ``server_ms``, which includes the one-way delay)."""
        server_ms = args.get("server_ms")
        if server_ms is not None and (not isinstance(server_ms, int) or isinstance(server_ms, bool)):
            raise self._reject("args.server_ms must be an integer (ms)")
        sync = self.node.sync
        sync.restart()
        if sync.offset_ms is not None:
            return {"offset_ms": round(sync.offset_ms), "delay_ms": round(sync.delay_ms or 0),
                    "method": "ntp"}
        if server_ms is None:
            return {"offset_ms": None, "method": "none"}
        return {"offset_ms": server_ms - self.node.clock_ms(), "method": "one-way"}

    def _cancel(self, args: dict[str, Any]) -> dict[str, Any]:
        bc = args.get("bc")
        if not isinstance(bc, str) or not valid_id(bc):
            raise self._reject("args.bc must be a broadcast id")
        return {"cancelled": bc, "found": self._forget(bc)}

    def _play(self, args: dict[str, Any]) -> dict[str, Any]:
        """Start a held broadcast at the controller instant ``at`` (converted to our clock)."""
        bc, at, offset = args.get("bc"), args.get("at"), args.get("offset_ms", 0)
        if not isinstance(bc, str) or not valid_id(bc):
            raise self._reject("args.bc must be a broadcast id")
        if not isinstance(at, int) or isinstance(at, bool) or not isinstance(offset, int) or offset < 0:
            raise self._reject("args.at (ms) and args.offset_ms (>= 0) must be integers")
        node = self.node
        local_at = node.sync.controller_to_node(at)
        if node.player.start(bc, local_at, offset):
            return {"bc": bc, "at_local": int(local_at)}
        kept = node.downloads.verified(bc)
        if node.finished.get(bc, (None, ""))[0] == AckState.PLAYED:
            raise CommandRejected("already played")  # never twice, whoever asks
        if kept is not None:  # played or pre-empted before: replay on explicit request
            node.finished.pop(bc, None)
            node.player.enqueue(kept[0], kept[1], start_at=local_at, offset_ms=offset)
            return {"bc": bc, "at_local": int(local_at), "replay": True}
        progress = node.downloads.progress(bc)
        if progress is not None:
            raise CommandRejected(f"not_ready: {progress[0]}/{progress[1]} chunks")
        raise CommandRejected("unknown broadcast")

    def _reboot(self, args: dict[str, Any]) -> dict[str, Any]:
        return {}  # the reboot itself starts once the response is on its way

    def _forget(self, bc: str) -> bool:
        """Drop a download or queued broadcast (acks failed/cancelled); False if neither."""
        node = self.node
        if node.downloads.cancel(bc) or node.player.cancel(bc):
            return True
        if bc not in node.finished:  # not seen yet: a later manifest gets failed/cancelled
            node.finished[bc] = (AckState.FAILED, "cancelled")
        return False
