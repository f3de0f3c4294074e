"""§1 "Several brokers": a unit whose subscriptions the broker refused publishes its birth again
once every one is granted (the controller then offers it what it lacks: issue 16). Broker-free:
a fake link refuses the group's broadcast topics a few times."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from devices.mqtt import LinkStats
from devices.protocol import Topics
from firmware_sim.membership import Membership
from tests.fakes import until


class Link:
    """Grants every topic, except ``refuse`` the first ``times`` times it is asked for."""

    client_id = "u-1"

    def __init__(self, refuse: str, times: int) -> None:
        self.refuse, self.times = refuse, times
        self.is_connected = True
        self.stats = LinkStats(connects=1)
        self.asked: list[list[str]] = []
        self.left: list[str] = []

    def subscribe(self, topics: list[str]) -> asyncio.Future[list[int]]:
        self.asked.append(topics)
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        codes = []
        for t in topics:
            no = t == self.refuse and self.times > 0
            self.times -= no
            codes.append(0x80 if no else 1)
        fut.set_result(codes)
        return fut

    def unsubscribe(self, topics: list[str]) -> None:
        self.asked.append(["-", *topics])

    def reconnect(self, why: str) -> None:
        self.left.append(why)


def _membership(births: list[int]) -> Membership:
    io = SimpleNamespace(topics=Topics(), node_id="u-1")
    return Membership(io, initial_groups=["z"], on_volume=lambda v: None,  # type: ignore[arg-type]
                      on_reachable=lambda: births.append(1))


async def test_a_new_birth_once_the_refused_subscriptions_are_granted() -> None:
    births: list[int] = []
    m = _membership(births)
    link = Link("lp/group/z/bcast/+/+", times=2)
    m.connected(link)  # type: ignore[arg-type]
    await until(lambda: m.subscribed == {"z"}, "group z granted after two refusals", timeout_s=10)
    assert births == [1]  # once, when everything it asked for is granted
    assert link.asked[-1] == ["lp/group/z/bcast/+/+"] and link.left == []


async def test_no_second_birth_when_nothing_was_refused() -> None:
    births: list[int] = []
    m = _membership(births)
    m.connected(Link("nothing", times=0))  # type: ignore[arg-type]
    await until(lambda: m.subscribed == {"z"}, "group z granted", timeout_s=10)
    assert births == []  # (its own topics' grant was told first: their SUBACK came first)


async def test_a_group_left_while_refused_is_not_waited_for() -> None:
    births: list[int] = []
    m = _membership(births)
    link = Link("lp/group/y/bcast/+/+", times=99)  # never granted on this connection
    m.connected(link)  # type: ignore[arg-type]
    m.apply(["z", "y"])
    await until(lambda: m.subscribed == {"z"}, "group z granted, y refused", timeout_s=10)
    assert births == []
    m.apply(["z"])  # the config drops y: the unit no longer waits for it
    link.refuse = "lp/group/z/cmd"  # (nothing else is refused)
    m.apply(["z", "x"])
    await until(lambda: m.subscribed == {"z", "x"}, "group x granted", timeout_s=10)
    assert births == [1]
