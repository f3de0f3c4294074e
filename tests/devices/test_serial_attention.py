"""The serial gateway sounds an emergency's attention tone for its children (docs/protocol.md §3
*emergency: the attention tone*, §7.5): a real Mosquitto, the gateway on a pty, simulated boards on
its far end, a plain MQTT client playing the controller (tests/devices/test_serial_gateway.py's rig).

Boards keep nothing, so the gateway keeps each child's tone from its retained config and, the
moment an emergency's manifest arrives (no chunk of the speech sent yet), plays it on the line and
closes the relays of the targeted children whose copy is good (switching a board's amplifier on),
once per broadcast; each child's ``receiving`` ack says what the tone did."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import time
from pathlib import Path

import pytest

from devices import protocol as p
from devices.broker import BrokerProcess
from tests.devices.test_serial_gateway import GROUPS, Rig, T, make_rig
from tests.e2e.helpers import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.pty, pytest.mark.timeout(90)]

logger = logging.getLogger(__name__)

TONE = b"ID3" + os.urandom(3000)  # the line writes the file as it is: nothing decodes it here
TONE_MS = 600


def tone_of(data: bytes, *, good: bool = True) -> p.AttentionTone:
    sha = hashlib.sha256(data if good else data + b"x").hexdigest()
    return p.AttentionTone(sha256=sha, duration_ms=TONE_MS, data=base64.b64encode(data).decode())


def ack_of(rig: Rig, node: str, bc: str, state: str) -> dict[str, object] | None:
    found = [m for t, m, _ in rig.ctl.got if t == T.ack(node) and m["bc"] == bc and m["state"] == state]
    return found[0] if found else None


async def provision(rig: Rig) -> None:
    """a01, a02: a good tone; a03: a copy that fails its SHA-256; a04 (silent board): none."""
    tones = {"gw1-a01": tone_of(TONE), "gw1-a02": tone_of(TONE), "gw1-a03": tone_of(TONE, good=False)}
    for node, tone in tones.items():
        cfg = p.NodeConfig(node_id=node, groups=GROUPS[node], volume=55, attention=tone)
        await rig.ctl.client.publish(T.config(node), p.encode(cfg), retain=True)
    await wait_for(lambda: all(rig.gw.tones.kept(n) == t.sha256 for n, t in tones.items()), 10, "tones kept")


@pytest.fixture
async def rig(mosquitto: BrokerProcess, tmp_path: Path) -> Rig:
    async with make_rig(mosquitto.port, tmp_path) as r:
        yield r  # type: ignore[misc]


async def test_an_emergency_manifest_sounds_the_tone_before_any_chunk(rig: Rig) -> None:
    ctl, sim, gw = rig.ctl, rig.sim, rig.gw
    await provision(rig)
    sim.boards[2].power = False  # an amplifier switched off: the emergency's tone switches it on
    await wait_for(lambda: (ctl.last("gw1-a02", "telemetry") or {}).get("power") is False, 30, "seen off")
    speech = os.urandom(20_000)
    info, chunks = p.chunk_audio(speech, duration_ms=500, chunk_size=8192)
    scope = p.AudioScope(kind="group", id="all")
    m = p.Manifest(bc="e-9", audio=info, priority=p.Priority.EMERGENCY, expires_at=p.now_ms() + 60_000)
    sent = time.monotonic()
    await ctl.client.publish(T.manifest(scope, "e-9"), p.encode(m), retain=True)  # the manifest alone
    await wait_for(lambda: sim.boards[1].relay and sim.boards[2].relay, 10, "relays closed for the tone")
    closed = max(sim.boards[a].relay_log[0][0] for a in (1, 2))
    logger.info("manifest -> both relays closed for the tone: %.0f ms", (closed - sent) * 1000)
    assert sim.boards[2].power and not sim.boards[3].relay  # a03's copy is bad: nothing sounds there
    assert (rig.play_dir / "gw1" / "e-9.attention.mp3").read_bytes() == TONE
    assert gw.line.tones == [("e-9", ["gw1-a01", "gw1-a02"])] and gw.line.played == []
    await wait_for(lambda: all(ack_of(rig, n, "e-9", "receiving") for n in ("gw1-a01", "gw1-a02", "gw1-a03")),
                   10, "receiving acks")
    said = {n: ack_of(rig, n, "e-9", "receiving")["attention"]  # type: ignore[index]
            for n in ("gw1-a01", "gw1-a02", "gw1-a03", "gw1-a04")}
    assert said == {"gw1-a01": "sounded", "gw1-a02": "sounded", "gw1-a03": "mismatch", "gw1-a04": "missing"}
    # the tone ends (0.6 s): its relays open again, the speech has not come yet
    await wait_for(lambda: not sim.boards[1].relay and not sim.boards[2].relay, 10, "relays open after it")
    # now the speech: verified, played on the line to every child that answers (a03 too)
    for chunk in chunks:
        await ctl.client.publish(T.data(scope, "e-9"), chunk)
    heard = ("gw1-a01", "gw1-a02", "gw1-a03")
    await wait_for(lambda: all(ctl.acks(n, "e-9")[-1:] == ["played"] for n in heard), 30, "the speech played")
    assert gw.line.played == ["e-9"]
    assert [on for _, on in sim.boards[1].relay_log] == [True, False, True, False]
    assert (rig.play_dir / "gw1" / "e-9.mp3").read_bytes() == speech
    # the manifest again (a reconnect): the final ack re-sent, the tone does not sound twice
    await ctl.client.publish(T.manifest(scope, "e-9"), b"", retain=True)
    await ctl.client.publish(T.manifest(scope, "e-9"), p.encode(m), retain=True)
    await wait_for(lambda: ctl.acks("gw1-a01", "e-9").count("played") == 2, 30, "final ack re-sent")
    # (the tone is decided before any ack of a manifest is sent: seeing the re-sent ack is enough)
    assert gw.line.tones == [("e-9", ["gw1-a01", "gw1-a02"])] and len(sim.boards[1].relay_log) == 4


async def test_the_tone_sounds_over_what_plays_and_the_emergency_cuts_in(rig: Rig) -> None:
    """A normal broadcast plays to tdp4 (a01, a02); the emergency's manifest sounds the tone at
    once, with the relays already closed (they stay closed); the emergency then pre-empts it."""
    ctl, sim, gw = rig.ctl, rig.sim, rig.gw
    await provision(rig)
    tdp4 = p.AudioScope(kind="group", id="tdp4")
    await ctl.broadcast(tdp4, "n-1", os.urandom(20_000), duration_ms=20_000)
    await wait_for(lambda: ctl.acks("gw1-a01", "n-1")[-1:] == ["playing"], 30, "n-1 playing")
    await ctl.broadcast(tdp4, "e-2", os.urandom(5000), duration_ms=300, priority=p.Priority.EMERGENCY)
    await wait_for(lambda: gw.line.tones == [("e-2", ["gw1-a01", "gw1-a02"])], 10, "the tone")
    await wait_for(lambda: all(ctl.acks(n, "e-2")[-1:] == ["played"] for n in ("gw1-a01", "gw1-a02")),
                   30, "the emergency played")
    assert ctl.ack_reasons("gw1-a01", "n-1")[-1] == "preempted"
    assert ack_of(rig, "gw1-a01", "e-2", "receiving")["attention"] == "sounded"  # type: ignore[index]
    assert gw.line.played == ["n-1", "e-2"]
    await wait_for(lambda: not any(b.relay for b in sim.boards.values()), 10, "relays open")
