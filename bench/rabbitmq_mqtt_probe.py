"""Does RabbitMQ's MQTT plugin do what docs/protocol.md needs? (docs/deploy.md "Broker cluster").

Starts a private RabbitMQ node — its own node name, ports, data directory, Erlang cookie and
plugin file, so a RabbitMQ service already running on the machine is left alone — with
``rabbitmq_mqtt`` on a free port, then checks with our MQTT client: a retained message on an
exact subscription, a retained manifest on the wildcard subscription a unit uses
(``lp/node/X/bcast/+/+``), and the last-will of a dropped connection. Stops the node again.

    python bench/rabbitmq_mqtt_probe.py

The last line is one JSON object (``{"skipped": ...}`` when RabbitMQ is not installed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.broker import free_port, wait_port
from devices.mqtt import AsyncMqttClient, BrokerAddress, Will

BIN = Path("/usr/lib/rabbitmq/bin")
NODE = "lpprobe@localhost"


def _env(d: Path, node_port: int, dist_port: int) -> dict[str, str]:
    return {**os.environ, "HOME": str(d), "RABBITMQ_NODENAME": NODE, "RABBITMQ_NODE_PORT": str(node_port),
            "RABBITMQ_DIST_PORT": str(dist_port), "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "db"), "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "pid")}


async def _retained(b: BrokerAddress, cid: str, topic: str) -> bool:
    got: list[bytes] = []
    c = AsyncMqttClient(cid, b, on_message=lambda _t, p, r: got.append(p) if r else None, log_failures=False)
    c.start()
    try:
        await asyncio.wait_for(c.connected.wait(), 10)
        fut = c.subscribe([topic])
        assert fut is not None
        await asyncio.wait_for(fut, 10)
        await asyncio.sleep(1.5)
        return bool(got)
    finally:
        await c.stop()


async def _checks(port: int) -> dict[str, bool]:
    b = BrokerAddress(port=port)
    pub = AsyncMqttClient("probe-pub", b, log_failures=False)
    pub.start()
    await asyncio.wait_for(pub.connected.wait(), 10)
    await pub.publish("lp/node/u1/bcast/b1/manifest", b"{}", retain=True)
    await pub.publish("lp/node/u1/config", b"{}", retain=True)
    out = {"retained_exact": await _retained(b, "probe-1", "lp/node/u1/config"),
           "retained_wildcard": await _retained(b, "probe-2", "lp/node/u1/bcast/+/+")}
    wills: list[bytes] = []
    watch = AsyncMqttClient("probe-watch", b, on_message=lambda _t, p, _r: wills.append(p),
                            log_failures=False)
    watch.start()
    await asyncio.wait_for(watch.connected.wait(), 10)
    fut = watch.subscribe(["lp/node/u2/state"])
    assert fut is not None
    await asyncio.wait_for(fut, 10)
    unit = AsyncMqttClient("u2", b, will=Will("lp/node/u2/state", b"offline"), log_failures=False)
    unit.start()
    await asyncio.wait_for(unit.connected.wait(), 10)
    await unit.kill()
    await asyncio.sleep(2)
    out["last_will"] = wills == [b"offline"]
    await watch.stop()
    await pub.stop()
    return out


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    if not (BIN / "rabbitmq-server").exists():
        print(json.dumps({"bench": "rabbitmq_mqtt_probe", "skipped": "rabbitmq-server is not installed"}))
        return 0
    with tempfile.TemporaryDirectory(prefix="lp-rmq-") as tmp:
        d = Path(tmp)
        mqtt_port, env = free_port(), _env(d, free_port(), free_port())
        (d / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (d / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{env['RABBITMQ_NODE_PORT']}\n"
                                         f"mqtt.listeners.tcp.default = 127.0.0.1:{mqtt_port}\n"
                                         "mqtt.allow_anonymous = true\nloopback_users = none\n")
        log = open(d / "server.log", "wb")  # closed below
        server = subprocess.Popen([str(BIN / "rabbitmq-server")], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            if not wait_port("127.0.0.1", mqtt_port, 90):
                raise RuntimeError(f"the private RabbitMQ node did not open MQTT port {mqtt_port}")
            version = subprocess.run([str(BIN / "rabbitmqctl"), "-n", NODE, "version"], env=env,
                                     capture_output=True, text=True, timeout=60).stdout.strip()
            result = asyncio.run(_checks(mqtt_port))
        finally:
            subprocess.run([str(BIN / "rabbitmqctl"), "-n", NODE, "stop"], env=env, capture_output=True,
                           timeout=60)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
            log.close()
    print(json.dumps({"bench": "rabbitmq_mqtt_probe", "rabbitmq": version, **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
