"""Provisioning of serial gateways (docs/protocol.md §7.5): which child units each gateway may
speak for.

A gateway's state lists the children it speaks for, but a list sent by a unit proves nothing:
any unit could name any other ward's units and pin them to ``unknown``. The controller and
``loaphuong mqtt-config`` therefore take the children from here, set by the ward's operator::

    LOAPHUONG_GATEWAYS='{"gw1": ["gw1-a01", "gw1-a02"]}'

The controller vouches a child unknown only when *its* provisioned gateway goes down, and the
broker ACL lets a gateway's account publish and read the topics of its provisioned children.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from devices.protocol import valid_id

#: More children than any RS-485 line can carry (addresses 1-247).
MAX_CHILDREN = 247


def _check(gateways: dict[str, list[str]]) -> dict[str, list[str]]:
    owner: dict[str, str] = {}
    for gw, children in gateways.items():
        if not valid_id(gw):
            raise ValueError(f"gateway id {gw!r}: use 1-63 lowercase letters, digits, '-' or '_'")
        if len(children) > MAX_CHILDREN:
            raise ValueError(f"gateway {gw}: at most {MAX_CHILDREN} children")
        for child in children:
            if not valid_id(child) or child == gw:
                raise ValueError(f"gateway {gw}: invalid child id {child!r}")
            if owner.setdefault(child, gw) != gw:
                raise ValueError(f"unit {child} is provisioned under two gateways ({owner[child]}, {gw})")
    return {gw: list(dict.fromkeys(children)) for gw, children in gateways.items()}


Gateways = Annotated[
    dict[str, list[str]],
    AfterValidator(_check),
    Field(description="serial gateways: gateway unit id -> the child unit ids it may speak for "
                      "(docs/protocol.md §7.5); a gateway's state vouches for these only"),
]
