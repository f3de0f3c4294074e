"""The clock-sync filter and poll plan of devices/clock_filter.py, broker-free, on made-up links:
intersection of offset intervals (error ~1/N on a symmetric jittery link), drift tracked, a
stepped clock followed, nonsense replies ignored; polling fast until the estimate stops
improving, never faster than the controller's hint."""

from __future__ import annotations

import random

from devices import protocol as p
from devices.clock_filter import FAST_MAX, FAST_POLL_S, FINE_MS, REPLY_WAIT_S

TRUE_OFFSET = 20_000.0  # controller − node, ms


def exchange(f: p.ClockFilter, node_ms: float, offset: float, up_ms: float, down_ms: float,
             busy_ms: float = 0.3) -> None:
    """One request sent at ``node_ms`` (node clock) taking ``up_ms`` to the controller, which
    answers ``busy_ms`` later, the reply taking ``down_ms`` back."""
    t0 = node_ms
    t1 = t0 + up_ms + offset
    t2 = t1 + busy_ms
    t3 = t2 - offset + down_ms
    assert f.add(t0, t1, t2, t3)


def test_intersection_on_a_jittery_symmetric_link_is_within_a_few_ms() -> None:
    """50 ms each way plus 0–200 ms of jitter per direction: one sample is off by up to ±100 ms,
    150 samples' intersection by a few ms (a median of the lower-delay half was ~10 ms off)."""
    rng = random.Random(3)
    worst = 0.0
    for _ in range(20):  # 20 units
        f = p.ClockFilter()
        for i in range(150):
            exchange(f, 1e12 + i * 250, TRUE_OFFSET, 50 + rng.uniform(0, 200), 50 + rng.uniform(0, 200))
        assert f.offset_ms is not None
        worst = max(worst, abs(f.offset_ms - TRUE_OFFSET))
    assert worst < 5.0, worst


def test_a_busy_controller_widens_samples_but_does_not_bias_the_estimate() -> None:
    rng = random.Random(4)
    f = p.ClockFilter()
    for i in range(60):  # every other request waits up to 400 ms in a busy controller
        busy = rng.uniform(0, 400) if i % 2 else 0.2
        exchange(f, 1e12 + i * 300, TRUE_OFFSET, 1 + rng.uniform(0, 2), 1 + rng.uniform(0, 2), busy)
    assert f.offset_ms is not None and abs(f.offset_ms - TRUE_OFFSET) < 1.5


def test_drift_is_tracked_and_the_offset_followed_for_minutes() -> None:
    rng = random.Random(5)
    f = p.ClockFilter()
    rate = -50e-6  # the node gains 50 ppm: controller − node falls 50 µs a second
    start = 1e12
    for i in range(200):  # one exchange per 5 s for ~17 minutes
        node_ms = start + i * 5000
        offset = TRUE_OFFSET + rate * (node_ms - start)
        exchange(f, node_ms, offset, 20 + rng.uniform(0, 40), 20 + rng.uniform(0, 40))
    later = start + 200 * 5000 + 60_000  # a minute after the last sample
    estimate = f.offset_at(later)
    assert estimate is not None
    assert abs(f.drift - rate) < 10e-6, f.drift
    assert abs(estimate - (TRUE_OFFSET + rate * (later - start))) < 3.0


def test_a_stepped_clock_is_followed_from_the_newest_sample() -> None:
    f = p.ClockFilter()
    for i in range(20):
        exchange(f, 1e12 + i * 1000, TRUE_OFFSET, 5, 5)
    for i in range(20, 25):  # the node's clock was set 20 s back: the offset jumps by +20 s
        exchange(f, 1e12 + i * 1000 - 20_000, TRUE_OFFSET + 20_000, 5, 5)
    assert f.offset_ms is not None and abs(f.offset_ms - (TRUE_OFFSET + 20_000)) < 1.0


def test_replies_with_a_negative_or_absurd_delay_are_ignored() -> None:
    f = p.ClockFilter()
    assert not f.add(1000, 500, 500, 900)  # t3 before t0: a reply to a request before a reboot
    assert not f.add(0, 10, 10, 40_000)  # a 40 s round trip
    assert f.offset_ms is None and not f.samples


def test_poll_plan_is_fast_for_fast_max_requests_after_a_connect_then_slow() -> None:
    plan = p.PollPlan(interval_s=5.0, settle_s=120.0)
    plan.connected(0.0)
    assert plan.fast and plan.wait_s(0.0) == FAST_POLL_S
    for _ in range(FAST_MAX - 1):  # a 4G link: the interval stays ~100 ms wide
        plan.asked()
        plan.answered(100.0, 250)
    assert plan.fast
    plan.asked()
    assert not plan.fast
    assert plan.wait_s(10.0) == 5.0 and plan.wait_s(200.0) == 15.0  # settled: 3 x slower
    plan.connected(300.0)  # a reconnect: fast again ...
    assert plan.fast
    plan.asked()
    plan.answered(FINE_MS / 2, 250)  # ... unless the interval is already narrow (a LAN)
    assert not plan.fast


def test_poll_plan_never_polls_faster_than_the_controllers_hint() -> None:
    plan = p.PollPlan(interval_s=5.0)
    plan.connected(0.0)
    plan.answered(100.0, 25_000)  # a controller with 5,000 units polling
    assert plan.fast and plan.wait_s(1.0) == 25.0
    plan.answered(None, 10**9)
    assert plan.wait_s(1.0) == 300.0  # capped


def test_two_requests_in_flight_at_most_a_slow_reply_slows_the_polling() -> None:
    plan = p.PollPlan()
    plan.connected(0.0)
    assert plan.may_ask(0.0)
    plan.asked(0.0)
    assert plan.may_ask(0.0)
    plan.asked(0.0)
    assert not plan.may_ask(1.0)  # no reply yet: the next request waits (a busy controller)
    assert plan.may_ask(REPLY_WAIT_S)  # ... at most this long: a lost reply (QoS 0) is given up
    plan.answered(None, 500)  # a reply whose sample was refused still brings the hint
    assert plan.may_ask(0.1) and plan.wait_s(0.1) == 0.5


def test_requests_left_unanswered_double_the_wait_until_a_reply_comes() -> None:
    """A starved controller (or a dead link): each request given up unanswered doubles the wait,
    so a fleet is not sending one request a unit a second at it; the first reply ends it."""
    plan = p.PollPlan()
    plan.connected(0.0)
    now, waits = 0.0, []
    for _ in range(6):
        assert plan.may_ask(now)
        plan.asked(now)
        now += REPLY_WAIT_S  # no reply within the wait
        plan.may_ask(now)  # the request is given up
        waits.append(plan.wait_s(now))
        now += waits[-1]
    assert waits == [REPLY_WAIT_S * 2 ** i for i in range(6)]
    plan.answered(100.0, 250)
    assert plan.wait_s(now) == FAST_POLL_S  # answered: fast again


def test_the_poll_plans_schedule_keeps_the_estimate_for_ten_minutes() -> None:
    """The schedule a unit keeps (200 requests 250 ms apart, then one per 5 s for two minutes, then
    one per 15 s) on the bench's link (50 ms + 0–200 ms each way), clocks drifting 0 or ±50 ppm.
    Drift points taken from the first, wide samples once made the rate hundreds of ppm wrong after
    two minutes: errors of 70–190 ms. Now the rate comes from the lowest-delay samples' hulls."""
    worst = 0.0
    for unit in range(12):
        rng = random.Random(100 + unit)
        rate = (0.0, 50e-6, -50e-6)[unit % 3]
        f = p.ClockFilter()
        start, node_ms = 1e12, 1e12
        for i in range(260):
            offset = TRUE_OFFSET + rate * (node_ms - start)
            exchange(f, node_ms, offset, 50 + rng.uniform(0, 200), 50 + rng.uniform(0, 200))
            node_ms += 250 if i < 200 else 5000 if i < 224 else 15_000
            if node_ms - start > 45_000:
                estimate = f.offset_at(node_ms)
                assert estimate is not None
                worst = max(worst, abs(estimate - (TRUE_OFFSET + rate * (node_ms - start))))
    assert worst < 40.0, worst  # 31 ms here; 113 ms before
