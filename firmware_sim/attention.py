"""The attention tone of a simulated unit (docs/protocol.md §1 config ``attention``, §3 emergency).

The unit keeps the tone its retained config carries ("flash": it survives a power loss, as the
config is retained anyway; the simulator decodes it from the config it holds when it first needs it)
and, on the manifest of an emergency, checks the kept file against the config's SHA-256 and sounds
it at once — before a single chunk of the speech has arrived — over whatever plays (which the
controller's ``stop``/``preempted`` ends, by its pre-emption policy). The rules (once per broadcast,
not for a finished or expired one; what the check says) are devices/node_rules.py's
(:func:`~devices.node_rules.attention_due`, :func:`~devices.node_rules.tone_check`); the result goes
in the ack of that manifest (``attention``: sounded, mismatch or missing), and a unit whose tone
fails the check sounds none but still plays the speech. What remembers the tones sounded is RAM.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

from devices.protocol import (
    TONE_KEEP,
    TONE_MISMATCH,
    TONE_SOUNDED,
    AttentionTone,
    Manifest,
    NodeConfig,
    attention_due,
    tone_bytes,
    tone_check,
)
from firmware_sim.flash import Flash
from firmware_sim.io import NodeIO
from firmware_sim.player import Player

logger = logging.getLogger(__name__)


class Attention:
    """The unit's local attention tone (see the module docstring)."""

    def __init__(self, io: NodeIO, player: Player, config: Callable[[], NodeConfig | None],
                 flash: Flash | None = None) -> None:
        self._io = io
        self._flash = flash  # the unit agent's tone lives on its disk (firmware_sim/flash.py)
        self._player = player
        self._config = config
        self.tone: AttentionTone | None = None
        self.kept: bytes | None = None
        self.sounded: OrderedDict[str, str] = OrderedDict()  # bc -> what the tone did

    def provision(self, tone: AttentionTone | None) -> None:
        """The config's tone (None: the config names none): kept as it came (a new tone replaces it)."""
        if tone == self.tone:
            return
        data = self._stored(tone) if tone is not None else None
        if data and self._io.faults.tone_corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.tone, self.kept = tone, data
        if tone is not None and tone_check(tone, data) == TONE_MISMATCH:
            logger.warning("%s: attention tone %s... fails its checksum", self._io.node_id, tone.sha256[:12])

    def _stored(self, tone: AttentionTone) -> bytes:
        """The tone from flash if its copy there is good, else from the config (stored again)."""
        if self._flash is None:
            return tone_bytes(tone)
        name = f"tone-{tone.sha256}.{tone.codec}"
        kept = self._flash.get(name)
        if tone_check(tone, kept) == TONE_SOUNDED and kept is not None:
            return kept
        if kept is not None:
            logger.warning("%s: the stored attention tone is corrupted: fetched again from the config",
                           self._io.node_id)
        data = tone_bytes(tone)
        if not self._flash.put(name, data):
            logger.warning("%s: cannot store the attention tone (flash full or failing)", self._io.node_id)
        return data

    def alert(self, m: Manifest) -> str:
        """An incoming manifest: sound the tone if it is an emergency's (once); what it did, or ''."""
        io = self._io
        cfg = self._config()
        self.provision(cfg.attention if cfg is not None else None)  # the retained config's tone
        now = io.controller_ms()
        if not attention_due(m, controller_now_ms=now, finished=io.finished, sounded=self.sounded):
            return ""
        result = tone_check(self.tone, self.kept)
        self.sounded[m.bc] = result
        while len(self.sounded) > TONE_KEEP:
            self.sounded.popitem(last=False)
        if result == TONE_SOUNDED and self.tone is not None:
            self._player.sound_tone(m, self.tone.duration_ms)
            if self.kept is not None:
                self._player.tone_audio(self.kept, self.tone.codec)
        else:
            logger.warning("%s: emergency %s without its attention tone (%s)", io.node_id, m.bc, result)
        return result
