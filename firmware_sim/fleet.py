"""Many simulated nodes in one process: :class:`Fleet` and the ``loaphuong sim`` command.

Every node keeps its own MQTT connection (as real units do), but the fleet drives all
of them from one asyncio loop: nodes are started in batches (default 50) so a thousand
of them do not hit the broker with one connect storm, one shared ticker sends every
node's heartbeat and telemetry (instead of a timer task per node), and identical chunk
and file bytes are shared between nodes (:class:`firmware_sim.node.BlobCache`).

``loaphuong sim --count 1000 --zones 10`` runs ``sim-0000`` ... ``sim-0999`` in groups
``all`` and ``zone1`` ... ``zone10`` (until the controller's retained config says
otherwise) and logs a summary every 30 s; SIGINT/SIGTERM stop every node cleanly.
``--play-log FILE`` appends every playback start and end (:mod:`firmware_sim.playlog`);
``--flap 0.3 --flap-every 20`` power-cycles 30 % of the units every 20 s
(:mod:`firmware_sim.flap`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from devices.failover import add_broker_option, brokers_from
from devices.mqtt_types import BrokerAddress, Brokers, broker_list
from devices.protocol import DEFAULT_PREFIX, valid_id
from firmware_sim.faultmix import KINDS, fault_mix
from firmware_sim.faults import Faults
from firmware_sim.flap import MODES, Flapper, FlapPlan
from firmware_sim.node import BlobCache, SimNode
from firmware_sim.playlog import PlayLog

logger = logging.getLogger(__name__)


@dataclass
class NodeSpec:
    """One unit of a fleet. ``password`` None = use the fleet broker's credentials."""

    node_id: str
    password: str | None = None
    groups: list[str] | None = None
    faults: Faults | None = None


class Fleet:
    """Starts, ticks and stops many :class:`SimNode` in the running event loop."""

    def __init__(
        self,
        nodes: list[NodeSpec],
        broker: Brokers,
        prefix: str = DEFAULT_PREFIX,
        *,
        heartbeat_s: float = 15.0,
        telemetry_s: float = 60.0,
        play_dir: Path | None = None,
        time_scale: float = 1.0,
        batch: int = 50,
        fw: str = "sim-1.0",
        keep_audio: bool = True,
        repair_idle_s: float = 2.0,
        play_log: PlayLog | None = None,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be >= 1")
        self.brokers = brokers = broker_list(broker)  # each node starts on its own place of the ring
        self.prefix = prefix
        self.batch = batch
        self.blobs = BlobCache()
        self.nodes: dict[str, SimNode] = {}
        self._tick_s = max(0.05, min(1.0, heartbeat_s / 4, telemetry_s / 4))
        self._ticker: asyncio.Task[None] | None = None
        for spec in nodes:
            if spec.node_id in self.nodes:
                raise ValueError(f"duplicate node id {spec.node_id!r}")
            address = brokers
            if spec.password is not None:
                address = [replace(b, username=spec.node_id, password=spec.password) for b in brokers]
            self.nodes[spec.node_id] = SimNode(
                spec.node_id, address, prefix=prefix, heartbeat_s=heartbeat_s,
                telemetry_s=telemetry_s, fw=fw, faults=spec.faults, play_dir=play_dir,
                groups=spec.groups,
                time_scale=None if spec.faults and spec.faults.time_scale != 1.0 else time_scale,
                repair_idle_s=repair_idle_s, own_ticker=False, keep_audio=keep_audio,
                blobs=self.blobs, log_link_failures=len(nodes) <= 20, play_log=play_log,
            )

    async def start(self, wait_s: float = 30.0) -> int:
        """Start every node, ``batch`` at a time; returns how many were ready within ``wait_s``.

        A node that is not ready in time keeps retrying in the background.
        """
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_all(), name="fleet-ticker")
        t0 = time.monotonic()
        nodes = list(self.nodes.values())
        ready = 0
        for i in range(0, len(nodes), self.batch):
            group = nodes[i : i + self.batch]
            results = await asyncio.gather(
                *(n.start(wait=True, wait_s=wait_s) for n in group), return_exceptions=True
            )
            for node, res in zip(group, results, strict=True):
                if isinstance(res, BaseException):
                    logger.warning("%s: not ready after %.0f s (%s); it keeps retrying",
                                   node.node_id, wait_s, type(res).__name__)
                else:
                    ready += 1
        logger.info("fleet: %d/%d nodes ready on %s in %.1f s", ready, len(nodes),
                    ",".join(map(str, self.brokers)),
                    time.monotonic() - t0)
        return ready

    async def stop(self) -> None:
        """Clean shutdown of every node (state ``shutdown``, then DISCONNECT)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        nodes = list(self.nodes.values())
        for i in range(0, len(nodes), self.batch * 4):
            await asyncio.gather(*(n.stop() for n in nodes[i : i + self.batch * 4]),
                                 return_exceptions=True)
        self.blobs.clear()
        logger.info("fleet: %d nodes stopped", len(nodes))

    async def _tick_all(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            for node in self.nodes.values():
                try:
                    node.tick()
                except Exception:  # one node's bug must not stop the others' heartbeats
                    logger.exception("%s: tick failed", node.node_id)

    def summary(self) -> dict[str, Any]:
        nodes = list(self.nodes.values())
        totals: dict[str, int] = {}
        for n in nodes:
            for key, value in n.stats.as_dict().items():
                totals[key] = totals.get(key, 0) + value
        return {
            "nodes": len(nodes),
            "connected": sum(n.connected for n in nodes),
            "playing": sum(bool(n.player.playing) for n in nodes),
            "played": sum(len(n.played) for n in nodes),
            "failed": sum(1 for n in nodes for state, _ in n.finished.values() if state.value == "failed"),
            **{k: totals.get(k, 0) for k in ("msgs_in", "bytes_in", "chunks_ok", "chunks_bad",
                                             "repairs_sent", "acks_sent", "commands",
                                             "payload_errors", "publish_dropped")},
        }


def fleet_specs(count: int, *, id_prefix: str = "sim", zones: int = 1,
                password_for: Callable[[str], str | None] | None = None) -> list[NodeSpec]:
    """``{id_prefix}-0000``... in groups ``all`` and ``zone1..zone{zones}`` (round robin)."""
    if count < 1 or zones < 1:
        raise ValueError("count and zones must be >= 1")
    width = max(4, len(str(count - 1)))
    specs = []
    for i in range(count):
        node_id = f"{id_prefix}-{i:0{width}d}"
        if not valid_id(node_id):
            raise ValueError(f"id prefix {id_prefix!r} gives an invalid node id {node_id!r}")
        specs.append(NodeSpec(node_id, password_for(node_id) if password_for else None,
                              ["all", f"zone{i % zones + 1}"]))
    return specs


async def run_fleet(
    count: int,
    broker: Brokers,
    *,
    prefix: str = DEFAULT_PREFIX,
    id_prefix: str = "sim",
    zones: int = 1,
    password_for: Callable[[str], str | None] | None = None,
    duration_s: float | None = None,
    play_dir: Path | None = None,
    heartbeat_s: float = 15.0,
    time_scale: float = 1.0,
    summary_s: float = 30.0,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    faults: str = "",
    seed: int = 0,
    play_log: Path | None = None,
    flap: FlapPlan | None = None,
) -> dict[str, Any]:
    """Run ``count`` nodes until ``duration_s`` passes, ``stop`` is set or SIGINT/SIGTERM.

    ``faults`` is a fault mix such as ``"crash:0.02,drop:0.05"`` (:mod:`firmware_sim.faultmix`);
    ``play_log`` a JSON-lines file every start and end is appended to; ``flap`` the units that
    come and go (:mod:`firmware_sim.flap`)."""
    specs = fleet_specs(count, id_prefix=id_prefix, zones=zones, password_for=password_for)
    mix = fault_mix(faults, [sp.node_id for sp in specs], seed)
    for sp in specs:
        sp.faults = mix.get(sp.node_id)
    if mix:
        logger.info("fleet: %d of %d units misbehave (%s)", len(mix), count, faults)
    log = PlayLog(play_log) if play_log is not None else None
    fleet = Fleet(specs, broker, prefix, heartbeat_s=heartbeat_s, play_dir=play_dir,
                  time_scale=time_scale, keep_audio=False, play_log=log)
    flapper = Flapper(list(fleet.nodes.values()), flap) if flap is not None else None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = _on_signals(loop, stop.set) if handle_signals else []
    try:
        await fleet.start()
        if flapper is not None:
            flapper.start()
        await _until_stopped(fleet, stop, duration_s, summary_s)
    finally:
        if flapper is not None:
            await flapper.stop()
        await fleet.stop()
        if log is not None:
            log.close()
        for sig in installed:
            loop.remove_signal_handler(sig)
    summary = fleet.summary()
    if flapper is not None:
        summary["flaps"] = sum(flapper.flaps.values())
    logger.info("fleet finished: %s", _fmt(summary))
    return summary


def _on_signals(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> list[signal.Signals]:
    """SIGINT/SIGTERM call ``handler``; returns the signals installed (to remove them after)."""
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    return installed


async def _until_stopped(fleet: Fleet, stop: asyncio.Event, duration_s: float | None,
                         summary_s: float) -> None:
    """Wait for ``stop`` or the end of ``duration_s``, logging a summary every ``summary_s``."""
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while not stop.is_set():
        wait = summary_s if deadline is None else min(summary_s, deadline - time.monotonic())
        if wait <= 0:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
        logger.info("fleet: %s", _fmt(fleet.summary()))


def _fmt(summary: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in summary.items())


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="loaphuong sim", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Simulated loudspeaker units that follow docs/protocol.md, against any MQTT broker. "
                    "Units are <id-prefix>-0000, -0001, ... in groups 'all' and zone1..zoneN.",
        epilog="examples:\n  loaphuong sim --count 200 --port 1883 --play-log plays.jsonl\n"
               "  loaphuong sim --count 10 --flap 0.3 --flap-every 20 --flap-mode network --seed 7")
    ap.add_argument("--host", default="127.0.0.1", help="broker host (%(default)s)")
    ap.add_argument("--port", type=int, default=1883, help="broker port (%(default)s)")
    add_broker_option(ap)
    ap.add_argument("--count", type=int, default=10, help="number of units (%(default)s)")
    ap.add_argument("--zones", type=int, default=1,
                    help="initial groups zone1..zoneN (plus 'all'; %(default)s)")
    ap.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix (%(default)s)")
    ap.add_argument("--id-prefix", default="sim", help="unit ids are <id-prefix>-0000 ...")
    ap.add_argument("--password", default=None, help="password of every unit (username = unit id)")
    ap.add_argument("--heartbeat", type=float, default=15.0,
                    help="heartbeat period in seconds (%(default)s)")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="playback lasts the audio's duration times this "
                         "(0.1 = ten times faster; %(default)s)")
    ap.add_argument("--duration", type=float, default=None,
                    help="stop after this many seconds (default: run until Ctrl-C)")
    out = ap.add_argument_group("what the units played")
    out.add_argument("--play-dir", type=Path, default=None, metavar="DIR",
                     help="write each played file to DIR/<unit>/<broadcast>.<codec> (a replay overwrites it)")
    out.add_argument("--play-log", type=Path, default=None, metavar="FILE",
                     help="append one JSON line per playback start and end (unit, bc, event, wall_ms, "
                          "offset_ms, reason, boot) to FILE, never overwritten: "
                          "a double play shows as two starts")
    bad = ap.add_argument_group("faults")
    bad.add_argument("--faults", default="", help="fault mix, e.g. crash:0.02,drop:0.05,liar:0.001 "
                     f"(kinds: {', '.join(KINDS)})")
    bad.add_argument("--flap", type=float, default=0.0, metavar="SHARE",
                     help="share of the units (0..1) that go down and come back periodically (0: none)")
    bad.add_argument("--flap-every", type=float, default=30.0, metavar="N",
                     help="each flapping unit goes down once every N seconds, at its own phase (%(default)s)")
    bad.add_argument("--flap-mode", choices=MODES, default="power",
                     help="power: mains loss (last-will, RAM lost, verified files kept, new session); "
                          "network: the link drops, the unit keeps playing and reconnects (%(default)s)")
    bad.add_argument("--flap-down", type=float, default=3.0, metavar="S",
                     help="seconds a flap lasts (%(default)s)")
    bad.add_argument("--flap-times", type=int, default=0, metavar="K",
                     help="at most K flaps per unit (0 = until the simulator stops)")
    bad.add_argument("--seed", type=int, default=0,
                     help="seed of the fault mix and of which units flap (%(default)s)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    password = args.password
    try:
        flap = FlapPlan(args.flap, args.flap_every, args.flap_mode, args.flap_down, args.seed,
                        args.flap_times) if args.flap > 0 else None
        asyncio.run(run_fleet(
            args.count, brokers_from(args.brokers, BrokerAddress(host=args.host, port=args.port)),
            prefix=args.prefix,
            id_prefix=args.id_prefix, zones=args.zones,
            password_for=(lambda _id: password) if password else None,
            duration_s=args.duration, play_dir=args.play_dir, heartbeat_s=args.heartbeat,
            time_scale=args.time_scale, faults=args.faults, seed=args.seed,
            play_log=args.play_log, flap=flap,
        ))
    except ValueError as exc:
        ap.error(str(exc))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
