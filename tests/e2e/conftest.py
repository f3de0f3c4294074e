"""Fixtures shared by the end-to-end tests."""

# a whole controller on a free port and a launched Chromium (the browser tests)
from tests.e2e.test_browser import browser, server  # noqa: F401
from tests.firmware_sim.test_relay import radio  # noqa: F401  (a local radio station, started and stopped)
