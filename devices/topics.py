"""Topic names of the loaphuong wire contract (docs/protocol.md §1): one builder for one prefix.

Import through :mod:`devices.protocol`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from devices.messages import DEFAULT_PREFIX, valid_id


def subscription_qos(topic: str) -> int:
    """The QoS a unit subscribes to ``topic`` with (docs/protocol.md §5 "Subscriptions"): 1 for
    commands (its own ``cmd`` and its groups'), 0 for everything else it reads (config, clock,
    controller state, manifests, chunks, live frames). On a clean session over one TCP connection
    QoS 1 adds no delivery the connection does not give (nothing is kept across a reconnect, and
    what a gap loses is caught up by the retained config and manifests, repairs and the
    controller asking again), but a clustered broker pays for each QoS 1 subscription: NATS backs
    every one with a JetStream consumer, replicated on every node (docs/scaling.md)."""
    return 1 if topic.endswith("/cmd") else 0


class Topics:
    """Topic builder for one prefix (default ``lp``).

    Node-owned (node publishes):
      {p}/node/{id}/state        retained, QoS1: birth / last-will / shutdown
      {p}/node/{id}/heartbeat    QoS0
      {p}/node/{id}/telemetry    QoS0
      {p}/node/{id}/ack          QoS1: delivery progress of a broadcast
      {p}/node/{id}/repair       QoS1: request for missing chunks
      {p}/node/{id}/resp         QoS1: command responses
      {p}/node/{id}/time         QoS0: clock sync request
    Controller-owned (node subscribes):
      {p}/controller/state       retained, QoS1: controller birth / last-will
      {p}/node/{id}/config       retained, QoS1: the node's groups and settings
      {p}/node/{id}/clock        QoS0: clock sync reply
      {p}/node/{id}/cmd          QoS1: commands to one node
      {p}/group/{g}/cmd          QoS1: commands to a group
      {p}/node/{id}/bcast/{b}/manifest, {p}/group/{g}/bcast/{b}/manifest  retained, QoS1
      {p}/node/{id}/bcast/{b}/data,     {p}/group/{g}/bcast/{b}/data      QoS1, binary chunks
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or "+" in prefix or "#" in prefix or prefix.endswith("/"):
            raise ValueError(f"invalid topic prefix {prefix!r}")
        self.prefix = prefix

    # node-owned
    def node(self, node_id: str, leaf: str) -> str:
        return f"{self.prefix}/node/{node_id}/{leaf}"

    def state(self, node_id: str) -> str:
        return self.node(node_id, "state")

    def heartbeat(self, node_id: str) -> str:
        return self.node(node_id, "heartbeat")

    def telemetry(self, node_id: str) -> str:
        return self.node(node_id, "telemetry")

    def ack(self, node_id: str) -> str:
        return self.node(node_id, "ack")

    def repair(self, node_id: str) -> str:
        return self.node(node_id, "repair")

    def resp(self, node_id: str) -> str:
        return self.node(node_id, "resp")

    def time(self, node_id: str) -> str:
        return self.node(node_id, "time")

    # controller-owned
    def controller_state(self) -> str:
        return f"{self.prefix}/controller/state"

    def controller_probe(self, client_id: str) -> str:
        """A controller's own round trip through the broker (devices/probe.py); no unit reads it."""
        return f"{self.prefix}/controller/probe/{client_id}"

    def config(self, node_id: str) -> str:
        return self.node(node_id, "config")

    def clock(self, node_id: str) -> str:
        return self.node(node_id, "clock")

    def cmd(self, node_id: str) -> str:
        return self.node(node_id, "cmd")

    def group_cmd(self, group: str) -> str:
        return f"{self.prefix}/group/{group}/cmd"

    def command(self, scope: AudioScope) -> str:
        """Where a command to ``scope`` goes: one node's ``cmd``, or a group's (broker fan-out)."""
        return f"{scope.base(self.prefix)}/cmd"

    def manifest(self, scope: AudioScope, broadcast_id: str) -> str:
        return f"{scope.base(self.prefix)}/bcast/{broadcast_id}/manifest"

    def data(self, scope: AudioScope, broadcast_id: str) -> str:
        return f"{scope.base(self.prefix)}/bcast/{broadcast_id}/data"

    def live(self, scope: AudioScope, session: str) -> str:
        """Live audio frames (QoS0, binary, §Live): under the bcast wildcard nodes already hold."""
        return f"{scope.base(self.prefix)}/bcast/{session}/live"

    # subscriptions
    def node_subscriptions(self, node_id: str) -> list[str]:
        """What a node subscribes to before it knows its groups."""
        return [
            self.config(node_id),
            self.cmd(node_id),
            self.clock(node_id),
            f"{self.prefix}/node/{node_id}/bcast/+/+",
            self.controller_state(),
        ]

    def group_subscriptions(self, group: str) -> list[str]:
        return [self.group_cmd(group), f"{self.prefix}/group/{group}/bcast/+/+"]

    def controller_subscriptions(self) -> list[str]:
        p = self.prefix
        return [f"{p}/node/+/{leaf}" for leaf in NODE_LEAVES]

    def parse_node_topic(self, topic: str) -> tuple[str, str] | None:
        """``{p}/node/{id}/{leaf}`` -> (id, leaf) for node-owned leaves, else None."""
        parts = topic.split("/")
        pre = self.prefix.split("/")
        if len(parts) != len(pre) + 3 or parts[: len(pre)] != pre or parts[len(pre)] != "node":
            return None
        node_id, leaf = parts[len(pre) + 1], parts[len(pre) + 2]
        if leaf not in NODE_LEAVES or not valid_id(node_id):
            return None
        return node_id, leaf

    def parse_bcast_topic(self, topic: str) -> tuple[str, str] | None:
        """``.../bcast/{b}/{manifest|data}`` -> (broadcast_id, kind), else None."""
        parts = topic.split("/")
        if len(parts) < 3 or parts[-3] != "bcast" or parts[-1] not in ("manifest", "data"):
            return None
        return parts[-2], parts[-1]


NODE_LEAVES = ("state", "heartbeat", "telemetry", "ack", "repair", "resp", "time")


class AudioScope(BaseModel):
    """Where a broadcast's audio is published: a group topic (fan-out by the broker) or one node."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["group", "node"]
    id: str

    def base(self, prefix: str) -> str:
        return f"{prefix}/{self.kind}/{self.id}"

