"""Simulated loudspeaker nodes that speak the wire protocol of docs/protocol.md.

:class:`~firmware_sim.node.SimNode` behaves as real firmware would (birth/last-will,
heartbeats, telemetry, commands, manifest + chunk + repair download, playback queue);
:class:`~firmware_sim.faults.Faults` makes it misbehave on purpose; and
:mod:`firmware_sim.fleet` runs hundreds or thousands of them in one asyncio loop
(``loaphuong sim``).
"""

from firmware_sim.faults import Faults
from firmware_sim.node import SimNode

__all__ = ["Faults", "SimNode"]
