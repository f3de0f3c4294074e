"""Shared fixtures: real brokers on free ports, and a controller running in the test's loop."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from controller.accounts import auth
from controller.airing.settings import DeliverySettings
from controller.app import create_app
from controller.core.web_settings import HttpSettings
from controller.fleet.settings import MqttSettings
from controller.settings import Settings
from devices.broker import BrokerProcess, mosquitto_path, nats_path

ADMIN = ("admin", "test-password-1")

for _k in [k for k in os.environ if k.startswith("LOAPHUONG_")]:
    del os.environ[_k]  # tests must not pick up a developer's settings

# Argon2id at the production cost (64 MiB, 3 passes, 4 lanes) is a quarter of a second of CPU per
# hash or check, and the suite makes a thousand of them (every first admin, user and login): in
# the tests' processes the same algorithm runs at a tiny cost. What the tests assert does not
# depend on the cost (test_login_attacks counts verifications); bench/login_timing.py, run as a
# child process by tests/bench, still measures the real one.
_CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
auth._hasher = _CHEAP
auth.Verifier.__init__.__defaults__ = (_CHEAP,)


@pytest.fixture
def mosquitto() -> Iterator[BrokerProcess]:
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed; tests/run.sh installs it (apt-get install mosquitto)")
    with BrokerProcess("mosquitto") as b:
        yield b


@pytest.fixture
def embedded_broker() -> Iterator[BrokerProcess]:
    with BrokerProcess("embedded") as b:
        yield b


@pytest.fixture(params=["mosquitto", "embedded", "nats"])
def any_broker(request: pytest.FixtureRequest) -> Iterator[BrokerProcess]:
    """Every MQTT 3.1.1 broker the contract must work on."""
    if request.param == "mosquitto" and mosquitto_path() is None:
        pytest.fail("mosquitto is not installed")
    if request.param == "nats" and nats_path() is None:
        pytest.skip("nats-server is not installed on this machine")
    with BrokerProcess(request.param) as b:
        yield b


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throwaway database on the machine's PostgreSQL, dropped afterwards (skip if unreachable)."""
    psycopg = pytest.importorskip("psycopg")
    name = f"lp_test_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def make_settings(data_dir: Path, port: int, **delivery: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        mqtt=MqttSettings(port=port),  # type: ignore[call-arg]
        delivery=DeliverySettings(**delivery),  # type: ignore[arg-type]
        admin_password=ADMIN[1],
        # the request deadline (10 s) is tested in tests/faults; elsewhere a request on a busy
        # machine (the suite in 6 workers beside a CPU hog) may take longer and is not what is tested
        http=HttpSettings(request_deadline_s=120),  # type: ignore[call-arg]
    )


@asynccontextmanager
async def running_controller(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The real app with its lifespan (DB, MQTT link, scheduler, delivery) in this event loop."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://controller", auth=ADMIN,
                                     timeout=60) as client:
            yield app, client
