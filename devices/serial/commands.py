"""Commands to serial children (docs/protocol.md §2 and §7.5), answered on the child's behalf.

A command on ``{p}/node/{child}/cmd`` (or on a group's cmd topic, once per member child)
becomes one or a few serial transactions; the child's response goes to
``{p}/node/{child}/resp`` with the request's correlation id, once. As on any node: an
expired request is dropped unanswered (:func:`devices.protocol.command_expired`; the gateway
has no clock-sync sample, so ``ping`` never is), a request id answered in the last 10 minutes is
ignored, an unknown name is answered ``error``/``unknown command``. A board that does
not answer after the retries gives ``error``/``serial timeout`` (so the controller learns
the outcome sooner than its own timeout); a NAK gives ``error`` with the NAK reason.
A ``play`` for a broadcast a child hears now or has finished starts nothing again (the rule of
:func:`devices.protocol.play_already`): answered ``ok`` with ``already``, its ack re-sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from devices import protocol as p
from devices.serial.contract import Child
from devices.serial.io import BoardControl, GatewayIO
from devices.serial.master import BusNak, BusTimeout
from devices.serial.port import PortDown
from devices.serial.wire import Cmd

logger = logging.getLogger(__name__)

#: Commands waiting for the bus at once; beyond this, children answer "busy".
MAX_PENDING = 256

Handler = Callable[[Child, dict[str, Any]], Awaitable[dict[str, Any]]]


class CommandRejected(Exception):
    """Answered with status "error" and this message."""


class BadArgs(CommandRejected):
    """Rejected because of its arguments: answered ``bad arguments: <message>``
    (:func:`devices.protocol.bad_arguments`, the rule of every unit)."""


class LineControl(Protocol):
    """What the answers need of the programme line: take one child off it."""

    async def stop_child(self, child: Child, reason: str) -> str: ...

    async def cancel(self, child: Child, bc: str, reason: str = "cancelled") -> bool: ...

    def release(self, bc: str) -> bool:
        """A held broadcast (§3 `hold`) takes its turn on the line; False if it is not waiting."""
        ...

    def state_of(self, bc: str, child: Child) -> p.AckState | None:
        """``playing`` (relay closed for it) or ``verified`` (waiting for the line), else None."""
        ...


class DownloadControl(Protocol):
    def cancel(self, child: Child, bc: str) -> bool: ...

    def progress(self, child: Child, bc: str) -> tuple[int, int] | None:
        """(chunks held, chunks total) of a download ``child`` is a target of, else None."""
        ...


class GatewayCommands:
    """Answers the commands to the children (and the gateway's own ``ping``)."""

    def __init__(self, io: GatewayIO, *, boards: BoardControl, line: LineControl,
                 downloads: DownloadControl) -> None:
        self._io = io
        self._boards = boards
        self._line = line
        self._downloads = downloads
        self.pending = 0
        self.handled = 0
        self._seen: p.RequestDedupe[tuple[str, str]] = p.RequestDedupe()
        self._handlers: dict[str, Handler] = {
            "ping": self._ping, "power": self._power, "volume": self._volume,
            "stop": self._stop, "cancel": self._cancel, "reboot": self._reboot, "play": self._play,
        }

    def _parse(self, topic: str, payload: bytes) -> p.Command | None:
        try:
            cmd = p.decode(p.Command, payload)
        except p.PayloadError as exc:
            self._io.bad(topic, exc)
            return None
        # the gateway host's clock (SNTP) is its only estimate of the controller's: it has no
        # clock-sync sample, so ping (and sync_time) are never dropped for expiry
        if p.command_expired(cmd, self._io.clock_ms(), synced=False):
            logger.info("%s: dropped expired command %s (%s)", self._io.gateway_id, cmd.id, cmd.name)
            return None
        return cmd

    def on_command(self, targets: list[Child], topic: str, payload: bytes) -> None:
        cmd = self._parse(topic, payload) if targets else None
        if cmd is None:
            return
        now = time.monotonic()
        for child in targets:
            if not self._seen.first_time((child.node_id, cmd.id), now):
                continue
            if self.pending >= MAX_PENDING:
                self._respond(child, cmd, {}, "busy: too many commands waiting for the serial line")
                continue
            self.pending += 1
            self._io.spawn(self._run(child, cmd), f"cmd-{child.node_id}-{cmd.id}")

    def on_gateway_command(self, topic: str, payload: bytes) -> None:
        """Commands to the gateway itself: ``ping`` only."""
        io = self._io
        cmd = self._parse(topic, payload)
        if cmd is None or not self._seen.first_time((io.gateway_id, cmd.id), time.monotonic()):
            return
        ok = cmd.name == "ping"
        resp = p.CommandResponse(id=cmd.id, node_id=io.gateway_id, status="ok" if ok else "error",
                                 data={"uptime_s": io.uptime_s()} if ok else {},
                                 error="" if ok else "unknown command")
        io.publish(io.topics.resp(io.gateway_id), p.encode(resp), qos=1)

    def prune(self, now: float) -> None:
        self._seen.prune(now)

    async def _run(self, child: Child, cmd: p.Command) -> None:
        data: dict[str, Any] = {}
        error = ""
        try:
            handler = self._handlers.get(cmd.name)
            if handler is None:
                raise CommandRejected("unknown command")
            data = await handler(child, cmd.args)
        except BadArgs as exc:
            error = p.bad_arguments(str(exc))
        except CommandRejected as exc:
            error = str(exc)
        except BusTimeout:
            error = "serial timeout: the board did not answer"
        except BusNak as exc:
            error = str(exc)
        except PortDown:
            error = "serial port down"
        except Exception:  # a bug must still produce an answer
            logger.exception("%s: command %s failed", self._io.gateway_id, cmd.name)
            error = "internal error"
        finally:
            self.pending -= 1
        self.handled += 1
        self._respond(child, cmd, data, error)

    def _respond(self, child: Child, cmd: p.Command, data: dict[str, Any], error: str) -> None:
        io = self._io
        resp = p.CommandResponse(ts=io.clock_ms(), id=cmd.id, node_id=child.node_id,
                                 status="error" if error else "ok", data={} if error else data, error=error)
        io.publish(io.topics.resp(child.node_id), p.encode(resp), qos=1)
        logger.debug("%s: command %s %s for %s -> %s", io.gateway_id, cmd.id, cmd.name, child.node_id,
                     error or "ok")

    # ------------------------------------------------------------------ handlers

    async def _ping(self, child: Child, args: dict[str, Any]) -> dict[str, Any]:
        status = await self._boards.request(child, Cmd.POLL)
        return {"uptime_s": status.uptime_s}

    async def _power(self, child: Child, args: dict[str, Any]) -> dict[str, Any]:
        on = args.get("on")
        if not isinstance(on, bool):
            raise BadArgs("args.on must be a boolean")
        if not on:
            await self._line.stop_child(child, "power_off")
        await self._boards.request(child, Cmd.POWER, int(on))
        return {"power": on}

    async def _volume(self, child: Child, args: dict[str, Any]) -> dict[str, Any]:
        level = args.get("level")
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 100:
            raise BadArgs("args.level must be an integer 0..100")
        await self._boards.request(child, Cmd.VOLUME, level)
        return {"volume": level}

    async def _stop(self, child: Child, args: dict[str, Any]) -> dict[str, Any]:
        """§2 stop: with ``bc``, only that broadcast (playing or waiting for the line), reported
        ``failed``/``reason`` (``preempted`` when an emergency took the zone)."""
        try:
            bc, reason = p.stop_args(args)
        except ValueError as exc:
            raise BadArgs(str(exc)) from None
        if bc is not None:
            return {"stopped": bc if await self._line.cancel(child, bc, reason) else ""}
        return {"stopped": await self._line.stop_child(child, reason)}

    async def _cancel(self, child: Child, args: dict[str, Any]) -> dict[str, Any]:
        bc = args.get("bc")
        if not isinstance(bc, str) or not p.valid_id(bc):
            raise BadArgs("args.bc must be a broadcast id")
        found = self._downloads.cancel(child, bc) or await self._line.cancel(child, bc)
        if not found and bc not in child.finished:  # not seen yet: its manifest gets failed/cancelled
            child.finished.finish(bc, p.AckState.FAILED, "cancelled")
        return {"cancelled": bc, "found": found}

    async def _play(self, child: Child, args: dict[str, Any]) -> dict[str, Any]:
        """At most once per child; otherwise it airs on the line in its turn (``at`` is not used)."""
        bc = args.get("bc")
        if not isinstance(bc, str) or not p.valid_id(bc):
            raise BadArgs("args.bc must be a broadcast id")
        held = self._line.state_of(bc, child)
        known = p.play_already(bc, playing=held is p.AckState.PLAYING, finished=child.finished,
                               resumable=False)  # the line keeps no file to play it again
        if known is not None:
            self._io.ack(child, bc, *known)
            return p.already_answer(bc, *known)
        if held is not None:
            self._line.release(bc)  # held (§3 `hold`): it takes its turn on the line now
            return {"bc": bc}
        progress = self._downloads.progress(child, bc)
        if progress is not None:
            raise CommandRejected(f"not_ready: {progress[0]}/{progress[1]} chunks")
        raise CommandRejected("unknown broadcast")

    async def _reboot(self, child: Child, args: dict[str, Any]) -> dict[str, Any]:
        await self._line.stop_child(child, "stopped")
        await self._boards.reboot(child)
        return {}
