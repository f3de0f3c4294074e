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
from controller.bulletins.speech_settings import TtsSettings
from controller.core.web_settings import HttpSettings
from controller.fleet.settings import MqttSettings
from controller.settings import Settings
from devices.broker import BrokerProcess, mosquitto_path, nats_path
from devices.broker_cluster import NatsCluster

ADMIN = ("admin", "test-password-1")

for _k in [k for k in os.environ if k.startswith("LOAPHUONG_") or k == "DATABASE_URL"]:
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


def _databases() -> list[str]:
    """``LP_DATABASES``: the databases a ``both_databases`` test runs on (default both; CI runs both)."""
    names = [n.strip() for n in os.environ.get("LP_DATABASES", "sqlite,postgresql").split(",") if n.strip()]
    unknown = set(names) - {"sqlite", "postgresql"}
    if unknown or not names:
        raise pytest.UsageError(f"LP_DATABASES: sqlite and/or postgresql, not {sorted(unknown) or names}")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``both_databases`` runs once per database of :func:`_databases`."""
    if metafunc.definition.get_closest_marker("both_databases") is not None:
        if "database" not in metafunc.fixturenames:
            metafunc.fixturenames.append("database")
        pg = pytest.mark.postgres
        params = [pytest.param(n, marks=pg) if n == "postgresql" else n for n in _databases()]
        metafunc.parametrize("database", params, indirect=True)


@pytest.fixture
def database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The database of a ``both_databases`` test: ``sqlite`` (the file in the data directory, as
    without this fixture) or a fresh PostgreSQL database of its own (:func:`pg_url`, dropped after),
    handed to every controller the test starts through ``DATABASE_URL`` as a deployment does.
    Afterwards the PostgreSQL database must hold the migrated schema: the test really ran on it."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    url = str(request.getfixturevalue("pg_url"))
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(url, connect_timeout=3) as conn:
        used = conn.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL").fetchone()
    assert used is not None and used[0], f"no controller of this test used {url}"


def make_settings(data_dir: Path, port: int, **delivery: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        mqtt=MqttSettings(port=port),  # type: ignore[call-arg]
        delivery=DeliverySettings(**delivery),  # type: ignore[arg-type]
        admin_password=ADMIN[1],
        # the request deadline (10 s) is tested in tests/faults; elsewhere a request on a busy
        # machine (the suite in 6 workers beside a CPU hog) may take longer and is not what is tested
        http=HttpSettings(request_deadline_s=120),  # type: ignore[call-arg]
        # the emergency templates' audio is rendered at start only where tested
        # (tests/e2e/test_browser_emergency.py): not five syntheses beside every test's controller
        tts=TtsSettings(prerender_emergency=False),  # type: ignore[call-arg]
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


@pytest.fixture
def nats_cluster() -> Iterator[NatsCluster]:
    """Three nats-server nodes in one cluster, MQTT + JetStream replicated on all three."""
    if nats_path() is None:
        pytest.fail("nats-server is not installed; tests/run.sh installs it (apt-get install nats-server)")
    with NatsCluster(3) as c:
        yield c
