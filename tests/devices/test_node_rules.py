"""The node-side rules of devices/node_rules.py, once: what the simulator and the serial gateway
both do (dedupe window, finished memory, repair cap and backoff, play order, config groups)."""

from __future__ import annotations

import random

import pytest

from devices import protocol as p
from devices.serial.contract import Child
from firmware_sim.faults import Faults
from firmware_sim.runtime import NodeRuntime


def test_dedupe_remembers_a_request_for_the_window_then_forgets_it() -> None:
    d: p.RequestDedupe[str] = p.RequestDedupe()
    assert d.window_s == p.DEDUPE_WINDOW_S == 600.0
    assert d.first_time("c1", 1000.0) and not d.first_time("c1", 1001.0)
    d.prune(1000.0 + 599.0)
    assert "c1" in d
    d.prune(1000.0 + 601.0)
    assert "c1" not in d and d.first_time("c1", 1602.0)


def test_dedupe_keeps_at_most_max_ids_and_prunes_at_most_every_interval() -> None:
    d: p.RequestDedupe[tuple[str, str]] = p.RequestDedupe(max_ids=3, prune_every_s=30.0)
    for i in range(5):
        assert d.first_time(("n", str(i)), float(i))
    assert len(d) == 3 and ("n", "0") not in d and ("n", "4") in d
    d.prune(10_000.0)
    assert len(d) == 0
    d.first_time(("n", "old"), 9_000.0)  # already older than the window
    d.prune(10_020.0)  # within 30 s of the last prune: not yet
    assert len(d) == 1
    d.prune(10_031.0)
    assert len(d) == 0


def test_finished_log_keeps_the_last_64_and_knows_played() -> None:
    log = p.FinishedLog()
    for i in range(p.FINISHED_KEEP + 6):
        log.finish(f"b{i}", p.AckState.FAILED, "expired")
    assert len(log) == p.FINISHED_KEEP == 64 and "b5" not in log and "b6" in log
    log.finish("b6", p.AckState.PLAYED, "")  # finishing again moves it to the newest end
    assert list(log)[-1] == "b6" and log.played("b6") and not log.played("b7") and not log.played("zz")


def test_repair_backoff_doubles_to_the_cap_and_a_chunk_resets_it() -> None:
    b = p.RepairBackoff(2.0, now=100.0)
    assert not b.due(101.0) and b.due(102.0)
    waits = []
    for _ in range(6):
        b.sent(0.0)
        waits.append(b.next_due)
    assert waits == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0] and p.REPAIR_MAX_WAIT_S == 30.0
    b.progress(50.0)
    assert (b.wait, b.next_due) == (2.0, 52.0)


def test_repair_batch_is_capped() -> None:
    assert p.repair_batch(list(range(1000))) == list(range(p.MAX_REPAIR))
    assert p.repair_batch([3, 5]) == [3, 5]


def test_play_order_emergency_first() -> None:
    order = sorted(p.Priority, key=p.play_rank)
    assert order == [p.Priority.EMERGENCY, p.Priority.PRIORITY, p.Priority.NORMAL]


def test_command_expiry_is_on_the_controller_clock() -> None:
    cmd = p.Command(id="c", name="ping", expires_at=1000)
    assert not p.command_expired(cmd, 1000, synced=True) and p.command_expired(cmd, 1001, synced=True)
    assert not p.command_expired(p.Command(id="c", name="ping"), 10**15, synced=True)


def test_sync_time_never_expires_and_ping_not_before_the_first_sync_sample() -> None:
    """D4: a unit 20 s fast judged sync_time on the clock it was meant to fix, and dropped it."""
    late = 10**15  # far past every expires_at below
    def cmd(name: str) -> p.Command:
        return p.Command(id="c", name=name, expires_at=1000)
    assert p.NEVER_EXPIRE == {"sync_time"} and p.UNSYNCED_NO_EXPIRY == {"sync_time", "ping"}
    for synced in (False, True):
        assert not p.command_expired(cmd("sync_time"), late, synced=synced)
    assert not p.command_expired(cmd("ping"), late, synced=False)
    assert p.command_expired(cmd("ping"), late, synced=True)
    for name in p.COMMANDS:  # everything else is checked, synced or not
        if name not in p.UNSYNCED_NO_EXPIRY:
            assert p.command_expired(cmd(name), late, synced=False)
            assert p.command_expired(cmd(name), late, synced=True)


def test_config_groups_skips_invalid_ids_and_caps_the_count() -> None:
    cfg = p.NodeConfig.model_construct(node_id="n", groups=["ok-1", "Not OK", *[f"g{i}" for i in range(80)]])
    groups = p.config_groups(cfg)
    assert groups[0] == "ok-1" and "Not OK" not in groups and len(groups) == p.MAX_GROUPS == 64


@pytest.mark.parametrize("state", list(p.AckState))
def test_final_states(state: p.AckState) -> None:
    assert (state in p.FINAL_STATES) is (state in (p.AckState.PLAYED, p.AckState.FAILED))


def test_the_simulator_and_the_gateway_share_the_finished_memory() -> None:
    """Both answer a finished broadcast's manifest from the same rule object."""
    assert isinstance(Child(1, "c-1").finished, p.FinishedLog)
    rt = NodeRuntime("n-1", p.Topics("t"), Faults(), random.Random(0))
    assert isinstance(rt.finished, p.FinishedLog)


def test_a_play_for_what_plays_now_or_has_finished_is_answered_not_started() -> None:
    log = p.FinishedLog()
    assert p.play_already("b1", playing=False, finished=log) is None  # new: it may start
    assert p.play_already("b1", playing=True, finished=log) == (p.AckState.PLAYING, "")
    for state, reason in ((p.AckState.PLAYED, ""), (p.AckState.FAILED, "stopped"),
                          (p.AckState.FAILED, "cancelled"), (p.AckState.FAILED, "expired")):
        log.finish("b2", state, reason)
        assert p.play_already("b2", playing=False, finished=log) == (state, reason)
    F = p.AckState.FAILED
    log.finish("b3", F, "preempted")  # the controller's restart / resume policy
    assert p.play_already("b3", playing=False, finished=log) is None
    assert p.play_already("b3", playing=False, finished=log, resumable=False) == (F, "preempted")
    log.finish("b4", p.AckState.FAILED, "too_late")  # its play came after the audio's end: a catch-up
    assert p.play_already("b4", playing=False, finished=log) is None
    assert p.play_already("b4", playing=False, finished=log, resumable=False) == (F, "too_late")
    assert p.RESUMABLE == {(p.AckState.FAILED, "preempted"), (p.AckState.FAILED, "too_late")}
    assert p.already_answer("b1", p.AckState.PLAYING) == {"bc": "b1", "already": "playing"}
    assert p.already_answer("b2", p.AckState.FAILED, "stopped") == {"bc": "b2", "already": "failed",
                                                                    "reason": "stopped"}


def test_play_stream_of_the_stream_relayed_now_is_not_restarted() -> None:
    url = "https://radio.example/vov1.mp3"
    assert p.stream_already(url, url)
    assert not p.stream_already(url, "") and not p.stream_already(url, "https://radio.example/vov2.mp3")
