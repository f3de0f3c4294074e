"""The command desk of a simulated node (docs/protocol.md §2).

:class:`CommandDesk` answers ``<prefix>/node/<id>/cmd`` and ``<prefix>/group/<g>/cmd``: it
drops expired commands (the rule of :func:`devices.protocol.command_expired`: ``sync_time``
never, ``ping`` not before the first clock-sync sample), ignores a request id answered in the dedupe window
(:class:`devices.protocol.RequestDedupe`), runs the handler registered for the command name
and publishes one response (``ok`` with data, or ``error`` with a reason) after
``Faults.ack_delay_s``. The desk knows no command itself: each part registers its own
(playback: ``power``, ``volume``, ``stop``, ``cancel``, ``play``, ``play_stream``; the clock:
``sync_time``; live audio: ``live_start``, ``live_stop``; the node: ``ping``, ``reboot``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from devices.protocol import (
    Command,
    CommandResponse,
    PayloadError,
    RequestDedupe,
    bad_arguments,
    command_expired,
    decode,
    encode,
)
from firmware_sim.io import NodeIO

logger = logging.getLogger(__name__)

_PRUNE_EVERY_S = 30.0

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class CommandRejected(Exception):
    """A command the node answers with status "error" and this message."""


class BadArgs(CommandRejected):
    """Rejected because of its arguments (also counted as a payload error); answered
    ``bad arguments: <message>`` (:func:`devices.protocol.bad_arguments`)."""


class CommandDesk:
    """Expiry, dedupe and the handler table of one node's commands."""

    def __init__(self, io: NodeIO) -> None:
        self._io = io
        self._seen: RequestDedupe[str] = RequestDedupe(prune_every_s=_PRUNE_EVERY_S)
        self._handlers: dict[str, Handler] = {}
        #: commands lost on the way by name (Faults.lose_commands)
        self.lost: Counter[str] = Counter()

    def register(self, name: str, handler: Handler) -> None:
        """``handler(args)`` answers command ``name``: data, or CommandRejected."""
        if name in self._handlers:
            raise ValueError(f"command {name!r} registered twice")
        self._handlers[name] = handler

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    def on_command(self, topic: str, payload: bytes) -> None:
        io, stats = self._io, self._io.stats
        if io.faults.ignore_commands:
            stats.commands_ignored += 1
            return
        try:
            cmd = decode(Command, payload)
        except PayloadError as exc:
            io.bad(topic, exc)
            return
        if self.lost[cmd.name] < io.faults.lose_commands.get(cmd.name, 0):
            self.lost[cmd.name] += 1  # Faults.lose_commands: as if lost on the way
            logger.info("%s: lost command %s (%s) (fault)", io.node_id, cmd.id, cmd.name)
            return
        if command_expired(cmd, io.controller_ms(), synced=io.clock_synced()):
            stats.commands_expired += 1
            logger.info("%s: dropped expired command %s (%s)", io.node_id, cmd.id, cmd.name)
            return
        if not self._seen.first_time(cmd.id, time.monotonic()):
            stats.commands_duplicate += 1
            return
        stats.commands += 1
        try:
            data = self._execute(cmd)
            status, error = "ok", ""
        except CommandRejected as exc:
            data, status, error = {}, "error", str(exc)
        resp = CommandResponse(ts=io.clock_ms(), id=cmd.id, node_id=io.node_id,
                               status=status, data=data, error=error)  # type: ignore[arg-type]
        topic_out, body = io.topics.resp(io.node_id), encode(resp)
        if io.faults.ack_delay_s > 0:
            io.later(io.faults.ack_delay_s, self._send_resp, topic_out, body)
        else:
            self._send_resp(topic_out, body)
        logger.debug("%s: command %s %s -> %s", io.node_id, cmd.id, cmd.name, status)

    def prune(self, now: float) -> None:
        """Forget request ids older than the dedupe window (at most every 30 s)."""
        self._seen.prune(now)

    def _send_resp(self, topic: str, body: bytes) -> None:
        self._io.publish(topic, body, qos=1)

    def _execute(self, cmd: Command) -> dict[str, Any]:
        handler = self._handlers.get(cmd.name)
        if handler is None:
            raise CommandRejected("unknown command")
        try:
            return handler(cmd.args)
        except BadArgs as exc:
            self._io.stats.payload_errors += 1
            logger.warning("%s: rejected command arguments: %s", self._io.node_id, exc)
            raise CommandRejected(bad_arguments(str(exc))) from None
