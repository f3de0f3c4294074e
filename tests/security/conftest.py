"""Fixtures of the attack suite (issue 11); the deployment itself is in :mod:`tests.security.ward`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.ward import Broker, generated_broker


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Mosquitto with the generated config of an empty ward (no anonymous clients, the generated
    ACL), shared by a module's tests: each serves its own controller on it (see ``settings_for``)."""
    with generated_broker(tmp_path_factory.mktemp("broker-data")) as broker:
        yield broker
