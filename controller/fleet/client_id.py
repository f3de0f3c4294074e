"""The controller's MQTT client id: one per instance, so two controllers never evict each other.

Two controllers on one broker with the same client id take the session from each other over and
over (issue 16: 11 evictions in 60 s, no alarm). Left unset, the id is derived from the host name
and the data directory: stable across restarts of one instance (its relays and lease keep their
owner's name), different for every other instance. A broker that pins the client id to the account
(``use_username_as_clientid``, controller/cli/mqtt_config.py) overrides it anyway, one account per
controller. A duplicate left anyway is reported (``AsyncMqttClient.duplicate_suspected``, /api/health).
"""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path

PREFIX = "loaphuong-controller"


def instance_client_id(configured: str, data_dir: Path) -> str:
    """``configured`` when set, else ``loaphuong-controller-<host>-<hash of host and data dir>``."""
    if configured:
        return configured
    host = socket.gethostname()
    tag = hashlib.sha256(f"{host}\0{data_dir.resolve()}".encode()).hexdigest()[:8]
    return f"{PREFIX}-{re.sub(r'[^A-Za-z0-9_.-]', '', host)[:24]}-{tag}"
