"""The attention tone of a serial gateway's children (docs/protocol.md §1 config ``attention``,
§3 *emergency: the attention tone*, §7.5).

Boards keep nothing, so the gateway keeps each child's tone for it: the one its retained config
carries, decoded and kept with the config's SHA-256 ("flash" here is the gateway's RAM; the
retained config brings it back after a restart). On the manifest of an emergency the gateway
checks, for each targeted child, the kept bytes against that SHA-256 and, once per broadcast and
child (not for a finished or expired broadcast: :func:`devices.protocol.attention_due`), sounds
the tone at once on the programme line to the children whose copy is good, before a single chunk
of the speech (:meth:`devices.serial.line.LinePlayer.sound_tone`: their amplifiers switched on,
their relays closed for the tone). What it did for each child (``sounded``, ``mismatch`` or
``missing``) goes in that child's ack of the manifest, as a unit's does.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from devices import protocol as p
from devices.serial.contract import Child
from devices.serial.io import GatewayIO
from devices.serial.line import LinePlayer

logger = logging.getLogger(__name__)


class Tones:
    """Each child's kept attention tone, and the emergencies it sounded for them."""

    def __init__(self, io: GatewayIO, line: LinePlayer) -> None:
        self._io = io
        self._line = line
        self._tone: dict[str, p.AttentionTone] = {}  # node id -> its config's tone
        self._kept: dict[str, bytes] = {}  # node id -> the bytes kept for it
        self._sounded: dict[str, OrderedDict[str, str]] = {}  # node id -> bc -> what the tone did

    def provision(self, child: Child, tone: p.AttentionTone | None) -> None:
        """The child's config names ``tone`` (None: none): kept as it came, a new one replaces it."""
        nid = child.node_id
        if tone == self._tone.get(nid):
            return
        if tone is None:
            self._tone.pop(nid, None)
            self._kept.pop(nid, None)
            return
        self._tone[nid], self._kept[nid] = tone, p.tone_bytes(tone)
        if p.tone_check(tone, self._kept[nid]) == p.TONE_MISMATCH:
            logger.warning("%s: the attention tone of %s fails its checksum", self._io.gateway_id, nid)

    def kept(self, node_id: str) -> str | None:
        """The SHA-256 of the tone kept for ``node_id`` (its config's), None if none."""
        tone = self._tone.get(node_id)
        return tone.sha256 if tone is not None else None

    def alert(self, m: p.Manifest, children: list[Child]) -> dict[str, str]:
        """An incoming manifest for ``children``: if it is an emergency's, sound the tone (once per
        child) on the line to those whose copy is good; what it did, by node id (none if not due)."""
        now, out = self._io.clock_ms(), {}
        good: dict[str, list[Child]] = {}  # tone sha256 -> the children it sounds to
        for child in children:
            sounded = self._sounded.setdefault(child.node_id, OrderedDict())
            if not p.attention_due(m, controller_now_ms=now, finished=child.finished, sounded=sounded):
                continue
            tone = self._tone.get(child.node_id)
            result = out[child.node_id] = p.tone_check(tone, self._kept.get(child.node_id))
            sounded[m.bc] = result
            while len(sounded) > p.TONE_KEEP:
                sounded.popitem(last=False)
            if result == p.TONE_SOUNDED and tone is not None:
                good.setdefault(tone.sha256, []).append(child)
            else:
                logger.warning("%s: emergency %s on %s without its attention tone (%s)", self._io.gateway_id,
                               m.bc, child.node_id, result)
        for group in good.values():
            tone = self._tone[group[0].node_id]
            self._line.sound_tone(m.bc, self._kept[group[0].node_id], tone.codec, tone.duration_ms, group)
        return out
