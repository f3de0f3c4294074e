"""Serial-attached nodes: relay/controller boards on an RS-485 or UART line, bridged to MQTT.

Layers, each usable alone (docs/protocol.md §7):

* :mod:`~devices.serial.frame`: flags + byte stuffing + CRC-16 framing and a resynchronising decoder;
* :mod:`~devices.serial.wire`: request/reply types and the board status block;
* :mod:`~devices.serial.port`: a port that is reopened with backoff (real ports, ptys, pyserial URLs);
* :mod:`~devices.serial.master`: half-duplex bus master (seq numbers, ACK/NAK, timeouts, retries);
* :mod:`~devices.serial.gateway`: the MQTT side: each child board presented as a node. Its parts
  get ports (:mod:`~devices.serial.io`: GatewayIO, implemented by :mod:`~devices.serial.runtime`;
  Switchboard/BoardControl, implemented by :mod:`~devices.serial.boards`), never the gateway:
  :mod:`~devices.serial.commands`, :mod:`~devices.serial.audio`, :mod:`~devices.serial.line`;
* :mod:`~devices.serial.cli`: ``loaphuong gateway``.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``loaphuong gateway`` (imports lazily: ``loaphuong --help`` stays fast)."""
    from devices.serial.cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
