"""Fixtures shared by the end-to-end tests."""

from tests.firmware_sim.test_relay import radio  # noqa: F401  (a local radio station, started and stopped)
