"""The link's command correlation (devices/replies.py, ControllerLink.command), without a broker."""

from __future__ import annotations

import pytest

from devices import protocol as p
from devices.link import ControllerLink
from devices.mqtt import BrokerAddress
from devices.replies import KEEP_AFTER_EXPIRY_MS, ReplyRouter


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def reply(cmd_id: str, node_id: str = "n-1", status: str = "ok") -> p.CommandResponse:
    return p.CommandResponse(id=cmd_id, node_id=node_id, status=status)  # type: ignore[arg-type]


def test_each_reply_goes_to_the_handler_of_its_id_and_strangers_are_counted() -> None:
    router = ReplyRouter(clock=Clock())
    got_a: list[tuple[str, str]] = []
    got_b: list[tuple[str, str]] = []
    a, _ = router.open(2_000_000, lambda n, r: got_a.append((n, r.status)))
    b, _ = router.open(2_000_000, lambda n, r: got_b.append((n, r.status)))
    assert a != b and a.startswith("c-") and p.valid_id(a)
    router.route("n-1", reply(a))
    router.route("n-2", reply(b, "n-2", "error"))
    router.route("n-1", reply("c-never-sent"))
    assert got_a == [("n-1", "ok")] and got_b == [("n-2", "error")]
    assert (router.stats["routed"], router.stats["unknown_id"]) == (2, 1)


def test_a_closed_or_long_expired_route_takes_no_more_replies() -> None:
    clock = Clock()
    router = ReplyRouter(clock=clock)
    got: list[str] = []
    a, close_a = router.open(clock.ms + 10_000, lambda n, r: got.append(n))
    b, _ = router.open(clock.ms + 10_000, lambda n, r: got.append(n))
    close_a()
    close_a()  # idempotent
    router.route("n-1", reply(a))
    clock.ms += 10_000 + KEEP_AFTER_EXPIRY_MS - 1
    router.route("late", reply(b, "late"))  # late, but within the keep: still the sender's
    clock.ms += 2
    router.route("later", reply(b, "later"))
    assert got == ["late"] and router.stats["unknown_id"] == 2
    router.open(clock.ms + 10_000, None)  # opening prunes the expired route
    assert router.open_count() == 1


def test_a_failing_handler_is_counted_not_raised() -> None:
    router = ReplyRouter(clock=Clock())

    def boom(node_id: str, r: p.CommandResponse) -> None:
        raise RuntimeError("bad handler")

    a, _ = router.open(2_000_000, boom)
    router.route("n-1", reply(a))
    assert router.stats["handler_error"] == 1


def test_the_link_routes_replies_from_the_wire_and_refuses_on_resp() -> None:
    link = ControllerLink(BrokerAddress(port=1))  # never started: no broker
    got: list[str] = []
    sent = link.command([p.AudioScope(kind="group", id="z1"), p.AudioScope(kind="node", id="n-2")],
                        "ping", {}, expires_at=p.now_ms() + 10_000, on_reply=lambda n, r: got.append(n))
    assert set(sent.unsent) == {"z1", "n-2"}  # not connected: nothing went out, nothing raised
    topic = link.topics.resp("n-2")
    link._dispatch(topic, p.encode(reply(sent.id, "n-2")), False)
    link._dispatch(topic, p.encode(reply("c-other", "n-2")), False)
    assert got == ["n-2"] and link.replies.stats["unknown_id"] == 1
    with pytest.raises(ValueError):
        link.on("resp", lambda n, m: None)
    seen: list[str] = []
    remove = link.on("heartbeat", lambda n, m: seen.append(n))
    hb = p.Heartbeat(node_id="n-2", session="s1", seq=1)
    link._dispatch(link.topics.heartbeat("n-2"), p.encode(hb), False)
    remove()
    link._dispatch(link.topics.heartbeat("n-2"), p.encode(hb), False)
    assert seen == ["n-2"]
    assert link.topics.command(p.AudioScope(kind="group", id="z1")) == "lp/group/z1/cmd"
    assert link.topics.command(p.AudioScope(kind="node", id="n-2")) == "lp/node/n-2/cmd"
