"""Broker-free: each service gets its units' replies from the bus by correlation id, none parses an id.

A small in-memory :class:`devices.link.UnitBus` (the real :class:`devices.replies.ReplyRouter` for
the ids) stands in for the MQTT link: commands, air control's ``play``, live ``live_start`` and a
relay's ``play_stream`` are answered as a unit would, and each answer lands where it belongs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from controller.airing.aircontrol import AirControl
from controller.fleet.commands import CommandService
from controller.fleet.presence import Presence
from controller.live.hub import LiveHub
from controller.relays.hub import RelayHub
from devices import protocol as p
from devices.link import ConnectCallback, Handler, Remover, SentCommand
from devices.replies import ReplyHandler, ReplyRouter

pytestmark = pytest.mark.timeout(30)


class Bus:
    """A UnitBus with no broker: records what is sent; ``answer`` plays a unit's reply."""

    def __init__(self) -> None:
        self.topics = p.Topics()
        self.connected = True
        self.router = ReplyRouter()
        self.sent: list[tuple[list[p.AudioScope], str, dict[str, Any], str]] = []
        self.published: list[tuple[str, bytes]] = []
        self.handlers: dict[str, list[Handler]] = {}

    def on(self, leaf: str, handler: Handler) -> Remover:
        self.handlers.setdefault(leaf, []).append(handler)
        return lambda: self.handlers[leaf].remove(handler)

    def deliver(self, leaf: str, node_id: str, msg: Any) -> None:
        for handler in self.handlers.get(leaf, []):
            handler(node_id, msg)

    def on_connect(self, callback: ConnectCallback) -> Remover:
        return lambda: None

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self.published.append((topic, payload))

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        self.published.append((topic, payload))
        return len(self.published)

    def command(self, scopes: Sequence[p.AudioScope], name: str, args: Mapping[str, Any], *,
                expires_at: int, on_reply: ReplyHandler | None = None) -> SentCommand:
        cmd_id, close = self.router.open(expires_at, on_reply)
        self.sent.append((list(scopes), name, dict(args), cmd_id))
        return SentCommand(cmd_id, close=close)

    async def command_acked(self, scopes: Sequence[p.AudioScope], name: str, args: Mapping[str, Any], *,
                            expires_at: int, on_reply: ReplyHandler | None = None) -> SentCommand:
        return self.command(scopes, name, args, expires_at=expires_at, on_reply=on_reply)

    def ids(self, name: str) -> list[str]:
        return [cmd_id for _, n, _, cmd_id in self.sent if n == name]

    def answer(self, cmd_id: str, node_id: str, status: str = "ok", error: str = "", **data: Any) -> None:
        self.router.route(node_id, p.CommandResponse(id=cmd_id, node_id=node_id, status=status,
                                                     error=error, data=data))


class Writer:
    def __init__(self) -> None:
        self.ops: list[Callable[..., None]] = []

    def submit(self, op: Callable[..., None]) -> None:
        self.ops.append(op)


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def fleet(*units: tuple[str, list[str]]) -> tuple[Bus, Presence]:
    bus = Bus()
    presence = Presence(bus, Writer())  # type: ignore[arg-type]  # a list of ops, not a database
    for node_id, zones in units:
        presence.provision(node_id, zones)
    return bus, presence


async def test_a_command_gets_its_own_replies_and_a_late_one_still_shows() -> None:
    bus, presence = fleet(("a-1", ["z"]), ("a-2", ["z"]))
    commands = CommandService(bus, presence, Writer())  # type: ignore[arg-type]
    bus.deliver("heartbeat", "a-1", p.Heartbeat(node_id="a-1", session="s1", seq=1))  # a-2 stays silent
    assert presence.is_online("a-1") and not presence.is_online("a-2")
    call = asyncio.create_task(commands.run("power", {"on": False}, zone="z", timeout_s=0.5))
    await until(lambda: bool(bus.ids("power")), "the command sent")
    [(scopes, _, _, cmd_id)] = bus.sent
    assert scopes == [p.AudioScope(kind="group", id="z")]  # one publish on the zone's topic
    bus.answer(cmd_id, "a-1", power=False)
    bus.answer(cmd_id, "a-1", power=False)  # duplicate delivery
    bus.answer("c-never-sent", "a-1")
    outcome = await call
    assert {r.node_id: r.status for r in outcome.results} == {"a-1": "ok", "a-2": "offline"}
    assert outcome.id == cmd_id and commands.stats["duplicate"] == 1
    assert bus.router.stats["unknown_id"] == 1
    assert presence.telemetry_of("a-1") == {"power": False}
    bus.answer(cmd_id, "a-2", power=False)  # it did it after all
    assert commands.stats["late"] == 1 and presence.telemetry_of("a-2") == {"power": False}


async def test_a_refused_play_reaches_the_refusal_listeners() -> None:
    bus, presence = fleet(("p-1", ["z"]))
    air = AirControl(bus, presence.groups_of, margin_ms=0)
    refused: list[tuple[str, str, str]] = []
    air.on_refused(lambda bc, n, why: refused.append((bc, n, why)))
    air.offer("b-1", priority=p.Priority.NORMAL, duration_ms=1000, nodes=["p-1"], play_at=None,
              scopes=[p.AudioScope(kind="group", id="z")], ready=lambda: True)
    [play] = bus.ids("play")
    assert air.airing("b-1") and not air.will_resume("b-1")
    bus.answer(play, "p-1", "error", "audio incomplete")
    bus.answer(play, "p-1", "ok")  # an ok is nobody's business
    assert refused == [("b-1", "p-1", "audio incomplete")]
    air.finished("b-1")
    assert not air.airing("b-1")


async def test_live_and_relay_refusals_land_on_their_own_session() -> None:
    bus, presence = fleet(("l-1", ["z"]), ("l-2", ["z"]))
    air = AirControl(bus, presence.groups_of)
    live = LiveHub(bus, air, presence)
    relays = RelayHub(bus, air, presence, owner="ctl-test")
    scopes = [p.AudioScope(kind="group", id="z")]
    s = live.open(user="op", priority=p.Priority.NORMAL, nodes=["l-1", "l-2"], scopes=scopes,
                  notify=lambda msg: None)
    await until(lambda: bool(bus.ids("live_start")), "live_start sent")
    bus.answer(bus.ids("live_start")[0], "l-2", "error", "power_off")
    bus.answer(bus.ids("live_start")[0], "stranger", "error", "power_off")  # not one of its units
    assert s.refused == {"l-2": "power_off"}
    live.end(s, "stopped")
    r = await relays.create(user="op", url="http://radio.example/a.mp3", mode="node_fetch",
                            priority=p.Priority.NORMAL, nodes=["l-1", "l-2"], scopes=scopes,
                            start_at=None, duration_s=None)
    await until(lambda: bool(bus.ids("play_stream")), "play_stream sent")
    bus.answer(bus.ids("play_stream")[0], "l-1", "error", "power_off")
    assert relays.describe(r)["units_refused"] == {"l-1": "power_off"}
    bus.answer(bus.ids("play_stream")[0], "l-1", "ok")
    assert relays.describe(r)["units_refused"] == {}
    await relays.close()
