"""The raw fan-out baseline's subscribers are one function (bench/raw_mqtt.py) behind both benches:
bench/fanout.py (one broker, ``--port``) and bench/cluster_fleet.py (a broker list, ``--brokers``).
Each child started as its bench starts it gets every chunk published on bench/data, answers once
on bench/ack with its number, and reports how many of its subscribers had everything when stopped."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from devices.broker import BrokerProcess
from devices.mqtt import AsyncMqttClient, BrokerAddress

ROOT = Path(__file__).resolve().parents[2]
COUNT, CHUNKS, FIRST = 3, 4, 10

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


async def run_child(args: list[str], port: int) -> tuple[set[bytes], dict[str, float]]:
    """Start the child, publish the chunks once it is READY, collect the acks, stop it: (acks, SUMMARY)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, *args, "--role", "raw", "--first", str(FIRST), "--count", str(COUNT),
        "--chunks", str(CHUNKS), cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    acks: set[bytes] = set()
    done = asyncio.Event()

    def on_ack(topic: str, payload: bytes, retained: bool) -> None:
        acks.add(payload)
        if len(acks) == COUNT:
            done.set()

    async def subscribed() -> None:
        pending = pub.subscribe(["bench/ack"], qos=1)
        if pending is not None:
            await pending

    pub = AsyncMqttClient("raw-test-pub", BrokerAddress(port=port), on_message=on_ack, on_connect=subscribed)
    try:
        assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"READY"
        pub.start()
        await asyncio.wait_for(pub.connected.wait(), 30)
        await asyncio.gather(*(pub.publish("bench/data", b"chunk %d" % i, qos=1) for i in range(CHUNKS)))
        await asyncio.wait_for(done.wait(), 60)
        child.stdin.write(b"stop\n")
        await child.stdin.drain()
        out = (await asyncio.wait_for(child.stdout.read(), 60)).decode().splitlines()
        assert await asyncio.wait_for(child.wait(), 30) == 0
    finally:
        await pub.stop()
        if child.returncode is None:
            child.kill()
            await child.wait()
    summary = [json.loads(ln.removeprefix("SUMMARY ")) for ln in out if ln.startswith("SUMMARY ")]
    assert len(summary) == 1, out
    return acks, summary[0]


@pytest.mark.parametrize("bench", ["fanout", "cluster_fleet"])
async def test_each_bench_runs_the_shared_raw_subscribers(mosquitto: BrokerProcess, bench: str) -> None:
    script = str(ROOT / "bench" / f"{bench}.py")
    # cluster_fleet takes a broker list: the same broker twice, so every client's place on the ring works
    where = (["--port", str(mosquitto.port)] if bench == "fanout"
             else ["--brokers", f"127.0.0.1:{mosquitto.port},127.0.0.1:{mosquitto.port}"])
    acks, summary = await run_child([script, *where], mosquitto.port)
    assert acks == {b"%d" % (FIRST + i) for i in range(COUNT)}  # each subscriber answered once, by number
    assert summary["got_all"] == COUNT and summary["cpu_s"] >= 0, summary
