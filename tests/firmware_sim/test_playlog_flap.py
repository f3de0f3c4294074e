"""What ``loaphuong sim`` must be able to show (issue 13), broker-free: the appended play log (a
double play is visible), flapping units (which, when, bounded, deterministic) and the verified
files a unit keeps across a power loss (no second download)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devices.protocol import AckState, Priority, encode
from firmware_sim.download import Downloads
from firmware_sim.flap import Flapper, FlapPlan
from firmware_sim.player import Player
from firmware_sim.playlog import PlayEvent, PlayLog, double_plays, read_play_log, starts
from tests.firmware_sim.test_parts import NOW, FakeIO, _bcast, _io, until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]


def _logged_player(io: FakeIO, log: PlayLog, time_scale: float = 0.5) -> Player:
    return Player(io.node_id, clock=lambda: float(io.now_ms), on_ack=io.ack, on_change=io.changed,
                  time_scale=time_scale, play_log=log)


# --------------------------------------------------------------------------- the play log


async def test_the_play_log_is_appended_so_a_double_play_shows(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "plays.jsonl"
    io = _io()
    player = _logged_player(io, PlayLog(path))
    m, _ = _bcast("b-1", hold=False)
    player.enqueue(m, b"x" * m.audio.size)
    await until(lambda: player.played == ["b-1"], "b-1 played")
    assert double_plays(read_play_log(path)) == {}
    # a second process (or a replay after a restart) writing to the same log appends to it
    again = _logged_player(io, PlayLog(path))
    again.enqueue(m, b"x" * m.audio.size)  # a unit that broke the at-most-once rule
    await until(lambda: again.played == ["b-1"], "b-1 played again")
    other, _ = _bcast("b-2", hold=False)
    again.enqueue(other, b"y" * other.audio.size)
    await until(lambda: again.played == ["b-1", "b-2"], "b-2 played")

    events = read_play_log(path)
    assert [(e.bc, e.event, e.reason) for e in events] == [
        ("b-1", "start", ""), ("b-1", "end", "played"), ("b-1", "start", ""), ("b-1", "end", "played"),
        ("b-2", "start", ""), ("b-2", "end", "played")]
    assert all(e.unit == "n-1" and e.priority == "normal" and e.boot == 1 for e in events)
    assert events[0].offset_ms == 0 and events[1].offset_ms >= m.audio.duration_ms
    assert events[0].wall_ms <= events[1].wall_ms <= events[2].wall_ms
    assert starts(events) == {("n-1", "b-1"): 2, ("n-1", "b-2"): 1}
    assert double_plays(events) == {("n-1", "b-1"): 2}


async def test_a_resume_after_preemption_is_not_a_double_play_but_a_power_loss_ends_the_play(
        tmp_path: Path) -> None:
    path = tmp_path / "plays.jsonl"
    io = _io()
    player = _logged_player(io, PlayLog(path), time_scale=1.0)
    normal, _ = _bcast("b-n", hold=False)
    storm, _ = _bcast("b-e", hold=False)
    storm = storm.model_copy(update={"priority": Priority.EMERGENCY})
    player.enqueue(normal, b"n" * normal.audio.size)
    await until(lambda: player.playing == "b-n", "b-n playing")
    player.enqueue(storm, b"e" * storm.audio.size)
    await until(lambda: player.played == ["b-e"], "the emergency played")
    player.enqueue(normal, b"n" * normal.audio.size, start_at=io.now_ms, offset_ms=100)  # resumed
    await until(lambda: player.playing == "b-n", "b-n resumed")
    player.reset()  # power loss while it plays
    events = read_play_log(path)
    assert [(e.bc, e.event, e.reason) for e in events] == [
        ("b-n", "start", ""), ("b-n", "end", "preempted"), ("b-e", "start", ""), ("b-e", "end", "played"),
        ("b-n", "start", ""), ("b-n", "end", "power_loss")]
    assert events[2].priority == "emergency" and events[4].offset_ms == 100 and events[5].boot == 1
    assert player.boot == 2 and player.current is None
    assert starts(events)[("n-1", "b-n")] == 2 and double_plays(events) == {}


async def test_reading_a_log_skips_a_torn_line_and_a_missing_log_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "plays.jsonl"
    assert read_play_log(path) == []
    log = PlayLog(path)
    event = PlayEvent(unit="u-1", bc="b-1", event="start", wall_ms=1, node_ms=2, offset_ms=0)
    log.record(event)
    log.close()
    with path.open("a", encoding="utf-8") as f:
        f.write('{"unit": "u-1", "bc"')  # a simulator killed mid-write
    assert read_play_log(path) == [event] and log.written == 1


# --------------------------------------------------------------------------- flapping


async def test_flap_plan_picks_the_same_share_for_the_same_seed_and_refuses_what_is_unbounded() -> None:
    ids = [f"sim-{i:04d}" for i in range(100)]
    plan = FlapPlan(0.3, 20, seed=7)
    chosen = plan.pick(ids)
    assert len(chosen) == 30 and set(chosen) <= set(ids)
    assert FlapPlan(0.3, 20, seed=7).pick(list(reversed(ids))) == chosen  # deterministic
    assert FlapPlan(0.3, 20, seed=8).pick(ids) != chosen
    assert FlapPlan(0.0, 20).pick(ids) == [] and FlapPlan(1.0, 20).pick(ids) == sorted(ids)
    phases = [plan.phase_s(n) for n in chosen]
    assert all(0 <= p <= 20 for p in phases) and len(set(phases)) == len(phases)
    for bad in ({"share": 1.5}, {"every_s": 0.5}, {"down_s": 30}, {"mode": "fire"}, {"times": -1}):
        kwargs: dict[str, object] = {"share": 0.1, "every_s": 20, **bad}
        with pytest.raises(ValueError):
            FlapPlan(**kwargs)  # type: ignore[arg-type]


class FakeUnit:
    """A Flappable that records what was done to it, with the loop's time."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.log: list[tuple[str, float]] = []
        self.up = True

    def _note(self, what: str) -> None:
        self.log.append((what, asyncio.get_running_loop().time()))

    async def kill(self) -> None:
        self.up = False
        self._note("kill")

    async def start(self, *, wait: bool = True, wait_s: float = 15.0) -> None:
        self.up = True
        self._note("start")

    async def drop_network(self, down_s: float) -> None:
        self.up = False
        self._note("net_down")
        await asyncio.sleep(down_s)
        self.up = True
        self._note("net_up")


async def test_flapper_flaps_only_its_share_each_period_at_most_times_then_leaves_them_up() -> None:
    units = [FakeUnit(f"u-{i}") for i in range(10)]
    flapper = Flapper(list(units), FlapPlan(0.3, 1.0, "power", down_s=0.2, seed=3, times=2))
    assert len(flapper.ids) == 3
    flapper.start()
    chosen = [u for u in units if u.node_id in flapper.ids]
    await until(lambda: all(len(u.log) == 4 for u in chosen), "two flaps each", within=10)
    await flapper.stop()
    for u in chosen:
        assert [w for w, _ in u.log] == ["kill", "start", "kill", "start"] and u.up
        (_, k1), (_, s1), (_, k2), _ = u.log
        # down for down_s; once per period (the first kill may come late on a busy machine and
        # the next on its phase: two in one period would be under half a period apart)
        assert s1 - k1 >= 0.19 and k2 - k1 >= 0.5
    assert all(u.log == [] for u in units if u not in chosen)
    assert sum(flapper.flaps.values()) == 6


async def test_stopping_a_network_flapper_brings_the_unit_back_first() -> None:
    units = [FakeUnit("u-0")]
    flapper = Flapper(list(units), FlapPlan(1.0, 1.0, "network", down_s=0.5))
    flapper.start()
    await until(lambda: units[0].log, "the first flap", within=5)
    await flapper.stop()
    assert [w for w, _ in units[0].log] == ["net_down", "net_up"] and units[0].up


# --------------------------------------------------------------------------- flash across a reboot


async def test_verified_files_survive_power_loss_and_answer_the_manifest_without_a_download() -> None:
    io = _io()
    player = Player(io.node_id, clock=lambda: float(io.now_ms), on_ack=io.ack, on_change=io.changed)
    dl = Downloads(io, player, repair_idle_s=1.0, blobs=None, keep_audio=False)
    kept, frames = _bcast("b-kept")
    done, done_frames = _bcast("b-done")
    for m, fr in ((kept, frames), (done, done_frames)):
        dl.on_manifest("x", m.bc, encode(m))
        for f in fr:
            dl.on_chunk(m.bc, f)
    io.finished.finish("b-done", AckState.PLAYED, "")
    dl.clear()
    player.reset()  # power loss: RAM (the queue) is gone, flash is not
    assert player.state_of("b-kept") is None
    assert dl.restore() == ["b-kept"]
    assert player.state_of("b-kept") == AckState.VERIFIED and player.state_of("b-done") is None
    chunks, acks = io.stats.chunks_ok, len(io.acked)
    dl.on_manifest("x", "b-kept", encode(kept))  # the retained manifest after the boot
    assert io.acked[acks:] == [("b-kept", AckState.VERIFIED, "", None)]
    assert "b-kept" not in dl and io.stats.chunks_ok == chunks and io.on("repair") == []

    player.reset()
    io.now_ms = NOW + 61_000  # past expires_at: the kept file is deleted at the next boot
    assert dl.restore() == [] and dl.verified("b-kept") is None and player.queue == []
