"""The §3 repair rule of a unit (devices.protocol.RepairPlan): what is asked for, and when.

Broker-free: the plan is driven with explicit instants; the simulator's and the gateway's
downloads call exactly these methods (tests/firmware_sim, tests/devices/test_serial_parts.py).
"""

from __future__ import annotations

from devices import protocol as p

IDLE = 2.0


def _plan(total: int = 10, now: float = 0.0) -> p.RepairPlan:
    return p.RepairPlan(total, IDLE, now)


def _missing(have: set[int], total: int) -> list[int]:
    return [i for i in range(total) if i not in have]


def test_a_chunk_still_in_flight_is_not_asked_for() -> None:
    plan, have = _plan(), {0, 1, 3, 4}  # 2 lost; 5..9 still on their way
    for t, i in enumerate(sorted(have)):
        plan.received(i, float(t) * 0.1)
    assert plan.top == 4 and not plan.due(2.0)  # 2 s after the last chunk (at 0.3 s)
    assert plan.due(2.3)
    assert plan.batch(_missing(have, 10), 2.3) == [2]  # lost below the highest; not 5..9


def test_after_twice_the_idle_wait_the_sending_is_over_and_the_tail_is_asked_for() -> None:
    plan, have = _plan(), {0, 1, 2}
    for i in sorted(have):
        plan.received(i, 0.0)
    assert plan.batch(_missing(have, 10), 2.0) == []  # no chunk lost below 2: nothing asked yet
    plan.sent([], 2.0)  # the check is done: the next one after the wait (2 s)
    assert not plan.due(3.9) and plan.due(4.0)
    assert plan.batch(_missing(have, 10), 4.0) == list(range(3, 10))  # 4 s quiet: the tail too


def test_the_last_chunk_ends_the_sending_and_makes_a_check_due_at_once() -> None:
    plan = _plan(total=5)
    for i in (0, 2, 4):
        plan.received(i, 1.0)
    assert plan.due(1.0)  # no 2 s wait: index 4 = total - 1 arrived
    assert plan.batch([1, 3], 1.0) == [1, 3]


def test_a_unit_with_no_chunk_asks_for_all_after_the_quiet() -> None:
    plan = _plan(total=4, now=10.0)
    assert plan.due(12.0) and plan.batch([0, 1, 2, 3], 12.0) == []
    plan.sent([], 12.0)
    assert plan.due(14.0) and plan.batch([0, 1, 2, 3], 14.0) == [0, 1, 2, 3]


def test_backoff_steps_and_a_new_chunk_restarts_it() -> None:
    plan, t, dues = _plan(total=1000), 0.0, []
    plan.received(999, 0.0)  # last chunk came: the sending is over
    for _ in range(7):
        assert plan.due(t)
        plan.sent(plan.batch([5], t), t)
        t = plan.next_due
        dues.append(t)
    assert dues == [2.0, 6.0, 14.0, 30.0, 60.0, 90.0, 120.0]  # waits 2, 4, 8, 16, 30, 30, 30
    plan.received(6, 200.0)  # a repair copy arrived: the count starts again at 2 s
    assert not plan.due(201.9) and plan.due(202.0)


def test_more_than_256_missing_are_asked_for_batch_after_batch() -> None:
    plan, total = _plan(total=600), 600
    plan.received(total - 1, 0.0)
    have = {total - 1}
    first = plan.batch(_missing(have, total), 0.0)
    assert first == list(range(p.MAX_REPAIR))
    plan.sent(first, 0.0)
    for i in first[:-1]:
        have.add(i)
        plan.received(i, 0.5)
        assert not plan.due(0.5)  # part of the batch still outstanding: wait
    have.add(first[-1])
    plan.received(first[-1], 0.5)  # the batch fully answered: the next one at once
    assert plan.due(0.5)
    assert plan.batch(_missing(have, total), 0.5) == list(range(256, 512))


def test_no_request_while_disconnected_and_no_backoff_step() -> None:
    plan = _plan()
    plan.received(9, 0.0)
    assert plan.due(0.0) and plan.batch([3], 0.0) == [3]
    plan.unsent(0.0)  # the publish could not go out
    assert plan.backoff.wait == IDLE and not plan.due(1.9) and plan.due(2.0)
    plan.sent([3], 2.0)
    assert plan.next_due == 4.0 and plan.requested == {3}


def test_a_checksum_restart_asks_for_everything_now() -> None:
    plan = _plan(total=3)
    for i in range(3):
        plan.received(i, 0.0)
    plan.restart(5.0)
    assert plan.due(5.0) and plan.batch([0, 1, 2], 5.0) == [0, 1, 2]


def test_a_reconnect_starts_the_count_again_and_asks_for_all_once_quiet() -> None:
    """A unit whose waits had doubled to 30 s asks again 2 s after its link is back (another broker
    node: its clean session lost what was sent meanwhile), for every chunk after 4 s of quiet."""
    plan, t = _plan(total=2), 0.0
    for _ in range(5):  # asked for both chunks at 4, 8, 16, 32 … s: unanswered (its node died)
        t = plan.next_due
        plan.sent(plan.batch([0, 1], t), t)
    assert plan.next_due - t == 30.0
    plan.reconnected(t + 1.0)
    assert not plan.due(t + 2.9) and plan.due(t + 3.0)
    assert plan.batch([0, 1], t + 3.0) == []  # 2 s quiet: chunks still coming are not asked for yet
    plan.sent([], t + 3.0)
    assert plan.due(t + 5.0) and plan.batch([0, 1], t + 5.0) == [0, 1]
