"""A NATS cluster with MQTT and JetStream on this machine, for tests and benchmarks.

``NatsCluster(3)`` starts three ``nats-server`` processes on free 127.0.0.1 ports, joined by
``cluster {}`` routes, each with JetStream (its own store directory) and an MQTT listener whose
streams and consumers are replicated on every node (``stream_replicas`` / ``consumer_replicas``
= the cluster size), so that losing one node loses no retained message, session or QoS 1
subscription (a replica-1 consumer on the dead node stalls the subscriptions it serves: "has NO
quorum"). :meth:`NatsCluster.kill` SIGKILLs one node, as a crashed machine; the config written is
the one docs/deploy.md "Broker cluster" shows.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devices.broker import free_port, nats_path, wait_port

logger = logging.getLogger(__name__)

__all__ = ["NatsCluster", "NatsNode", "node_config"]


@dataclass
class NatsNode:
    name: str
    mqtt_port: int
    client_port: int
    route_port: int
    http_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def node_config(node: NatsNode, peers: list[NatsNode], store: Path, cluster: str = "lp",
                consumer_replicas: int | None = None) -> str:
    """One node's nats-server.conf (the file docs/deploy.md shows, with this machine's ports).
    ``consumer_replicas`` (default: the cluster size) is lowered only by benches that measure
    what fewer consumer replicas cost and lose (bench/cluster_scale.py)."""
    routes = ", ".join(f"nats-route://127.0.0.1:{p.route_port}" for p in peers)
    replicas = len(peers)
    consumers = replicas if consumer_replicas is None else consumer_replicas
    return (
        f"server_name: {node.name}\n"
        f"listen: 127.0.0.1:{node.client_port}\n"
        f"http: 127.0.0.1:{node.http_port}\n"
        f'jetstream {{ store_dir: "{store}" }}\n'
        f"cluster {{ name: {cluster}, listen: 127.0.0.1:{node.route_port}, routes: [{routes}] }}\n"
        f"mqtt {{ listen: 127.0.0.1:{node.mqtt_port}, stream_replicas: {replicas}, "
        f"consumer_replicas: {consumers}, consumer_memory_storage: true }}\n"
    )


def _mqtt_accepts(port: int, client_id: str, timeout: float = 8.0) -> bool:
    """One MQTT 3.1.1 CONNECT (clean session) answered by an accepting CONNACK. The first client
    on a node makes NATS create the account's MQTT streams and that node's retained-messages
    consumer, which takes seconds: done here, before the clients under test arrive."""
    cid = client_id.encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x1e" + len(cid).to_bytes(2, "big") + cid
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(bytes([0x10, len(var)]) + var)
            ack = s.recv(4)
            s.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return len(ack) == 4 and ack[0] == 0x20 and ack[3] == 0


class NatsCluster:
    """``size`` nats-server nodes in one cluster on free ports (see the module docstring)."""

    def __init__(self, size: int = 3, *, consumer_replicas: int | None = None) -> None:
        if size < 1:
            raise ValueError("a cluster has at least one node")
        if consumer_replicas is not None and not 1 <= consumer_replicas <= size:
            raise ValueError("consumer_replicas must be within 1 .. the cluster size")
        self.consumer_replicas = consumer_replicas
        self._tmp = tempfile.TemporaryDirectory(prefix="lp-nats-")
        self.dir = Path(self._tmp.name)
        self.nodes = [NatsNode(f"n{i + 1}", free_port(), free_port(), free_port(), free_port())
                      for i in range(size)]
        self._logs: list[IO[bytes]] = []

    @property
    def mqtt_ports(self) -> list[int]:
        return [n.mqtt_port for n in self.nodes]

    def start(self, ready_s: float = 60.0) -> NatsCluster:
        exe = nats_path()
        if exe is None:
            raise RuntimeError("nats-server is not installed (apt-get install nats-server)")
        for node in self.nodes:
            conf = self.dir / f"{node.name}.conf"
            conf.write_text(node_config(node, self.nodes, self.dir / f"js-{node.name}",
                                        consumer_replicas=self.consumer_replicas))
            log = open(self.dir / f"{node.name}.log", "wb")  # closed in stop()
            self._logs.append(log)
            node.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_ready(ready_s)
        except RuntimeError:
            self.stop()
            raise
        logger.info("NATS cluster of %d up: MQTT on %s", len(self.nodes), self.mqtt_ports)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Until every live node listens for MQTT and reports JetStream healthy (a metadata leader)."""
        deadline = time.monotonic() + timeout
        for node in (n for n in self.nodes if n.alive):
            if not wait_port("127.0.0.1", node.mqtt_port, max(0.1, deadline - time.monotonic())):
                raise RuntimeError(f"NATS node {node.name} did not open MQTT port {node.mqtt_port}")
            while not (self._healthy(node) and _mqtt_accepts(node.mqtt_port, f"lp-warmup-{node.name}")):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"NATS node {node.name}: MQTT not ready within {timeout:.0f} s")
                time.sleep(0.2)

    @staticmethod
    def _healthy(node: NatsNode) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/healthz", timeout=2) as r:
                return bool(json.load(r).get("status") == "ok")
        except (OSError, ValueError):
            return False

    def kill(self, index: int) -> NatsNode:
        """SIGKILL one node (a crashed machine: no goodbye to the cluster or to its clients)."""
        node = self.nodes[index]
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait(10)
        logger.info("NATS node %s killed", node.name)
        return node

    def log(self, index: int) -> str:
        return (self.dir / f"{self.nodes[index].name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(5)
                node.proc = None
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._tmp.cleanup()
