"""The contract test kit for firmware makers: ``loaphuong conformance`` (docs/conformance.md).

It plays the controller's side of docs/protocol.md against one unit connected to a broker and
reports, item by item (each naming its section), PASS / FAIL / NOT TESTED with the evidence.
It imports devices/ only, so it runs wherever the wire contract does.
"""

from __future__ import annotations

from devices.conformance.cli import main
from devices.conformance.kit import ITEMS, run_kit
from devices.conformance.report import Report, Result, Status

__all__ = ["ITEMS", "Report", "Result", "Status", "main", "run_kit"]
