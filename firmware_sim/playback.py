"""The commands about what a simulated node plays (docs/protocol.md §2): ``power``, ``volume``,
``stop``, ``cancel``, ``play`` and ``play_stream``.

:class:`PlaybackCommands` registers them on the node's command desk and answers them by asking
the parts that hold the state: the player (queue, amplifier), the downloads (files being
received, verified files kept for a replay), the relay fetcher (an internet stream) and the
live receiver (a live session). A ``play`` for a broadcast the node plays now or has finished,
and a ``play_stream`` of the stream it relays, start nothing again (the rule of
:func:`devices.protocol.play_already`): answered ``ok`` with ``already``, the ack re-sent.
"""

from __future__ import annotations

from typing import Any, Protocol

from devices.protocol import (
    AckState,
    already_answer,
    play_already,
    stop_applies,
    stop_args,
    stream_already,
    valid_id,
)
from firmware_sim.commands import BadArgs, CommandDesk, CommandRejected
from firmware_sim.download import Downloads
from firmware_sim.io import NodeIO
from firmware_sim.player import Player
from firmware_sim.relay import RelayFetcher


class LiveSession(Protocol):
    """What ``stop`` needs of the live receiver."""

    @property
    def active(self) -> str: ...

    def end(self, reason: str) -> None: ...


class ClockMap(Protocol):
    """What ``play`` needs of the clock sync: a controller instant on the node clock."""

    def controller_to_node(self, controller_ms: float) -> float: ...


class PlaybackCommands:
    """Answers the playback commands (see the module docstring)."""

    def __init__(self, io: NodeIO, *, player: Player, downloads: Downloads, relay: RelayFetcher,
                 live: LiveSession, clock: ClockMap) -> None:
        self._io = io
        self._player = player
        self._downloads = downloads
        self._relay = relay
        self._live = live
        self._clock = clock

    def register(self, desk: CommandDesk) -> None:
        for name, handler in (("power", self.power), ("volume", self.volume), ("stop", self.stop),
                              ("cancel", self.cancel), ("play", self.play),
                              ("play_stream", self.play_stream)):
            desk.register(name, handler)

    def power(self, args: dict[str, Any]) -> dict[str, Any]:
        on = args.get("on")
        if not isinstance(on, bool):
            raise BadArgs("args.on must be a boolean")
        self._player.set_power(on)
        return {"power": on}

    def volume(self, args: dict[str, Any]) -> dict[str, Any]:
        level = args.get("level")
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 100:
            raise BadArgs("args.level must be an integer 0..100")
        self._player.set_volume(level)
        return {"volume": level}

    def stop(self, args: dict[str, Any]) -> dict[str, Any]:
        """Stop what plays now; with ``bc``, only if that is what plays (``reason`` preempted|stopped)."""
        try:
            bc, reason = stop_args(args)
        except ValueError as exc:
            raise BadArgs(str(exc)) from None
        player = self._player
        if not stop_applies(bc, player.playing):
            if bc is not None and player.cancel(bc, reason):  # held (with a start time): drop it
                return {"stopped": bc}
            return {"stopped": ""}
        stopped = player.stop_current(reason)
        if bc is None and self._relay.url:
            stopped = stopped or self._relay.url
            self._relay.stop()
            self._io.changed()
        if bc is None and self._live.active:
            stopped = stopped or self._live.active
            self._live.end(reason)
        return {"stopped": stopped}

    def play_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        """Relay an internet stream (VOV, province station) until ``stop``; bulletins still play."""
        url = args.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 500:
            raise BadArgs("args.url must be an http(s) URL of at most 500 characters")
        if not self._player.power:
            raise CommandRejected("power_off")
        if self._relay.state and stream_already(url, self._relay.url):
            return {"playing": url, "source": "relay", "already": AckState.PLAYING.value}  # no gap
        self._relay.start(url)  # firmware_sim/relay.py: fetch it, retry when it drops
        self._io.changed()
        return {"playing": url, "source": "relay"}

    def cancel(self, args: dict[str, Any]) -> dict[str, Any]:
        bc = args.get("bc")
        if not isinstance(bc, str) or not valid_id(bc):
            raise BadArgs("args.bc must be a broadcast id")
        return {"cancelled": bc, "found": self._forget(bc)}

    def play(self, args: dict[str, Any]) -> dict[str, Any]:
        """Start a held broadcast at the controller instant ``at`` (converted to our clock)."""
        bc, at, offset = args.get("bc"), args.get("at"), args.get("offset_ms", 0)
        if not isinstance(bc, str) or not valid_id(bc):
            raise BadArgs("args.bc must be a broadcast id")
        if not isinstance(at, int) or isinstance(at, bool) or not isinstance(offset, int) or offset < 0:
            raise BadArgs("args.at (ms) and args.offset_ms (>= 0) must be integers")
        finished = self._io.finished
        known = play_already(bc, playing=self._player.playing == bc, finished=finished)
        if known is not None:  # at most once, whoever asks: tell the truth again instead
            self._io.ack(bc, *known, started_at=self._player.started_at(bc))
            return already_answer(bc, *known)
        local_at = self._clock.controller_to_node(at)
        if self._player.start(bc, local_at, offset):
            return {"bc": bc, "at_local": int(local_at)}
        kept = self._downloads.verified(bc)
        if kept is not None:  # pre-empted, or held when the node rebooted: from the kept file
            finished.pop(bc, None)
            self._player.enqueue(kept[0], kept[1], start_at=local_at, offset_ms=offset)
            return {"bc": bc, "at_local": int(local_at), "replay": True}
        progress = self._downloads.progress(bc)
        if progress is not None:
            raise CommandRejected(f"not_ready: {progress[0]}/{progress[1]} chunks")
        raise CommandRejected("unknown broadcast")

    def _forget(self, bc: str) -> bool:
        """Drop a download or queued broadcast (acks failed/cancelled); False if neither."""
        if self._downloads.cancel(bc) or self._player.cancel(bc):
            return True
        if bc not in self._io.finished:  # not seen yet: a later manifest gets failed/cancelled
            self._io.finished.finish(bc, AckState.FAILED, "cancelled")
        return False
