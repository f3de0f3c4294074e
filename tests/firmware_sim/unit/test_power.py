"""The GPIO power driver against libgpiod's v2 API. This machine has no GPIO chip (no
/dev/gpiochip*, no gpio-sim), so the library is replaced at its edge by a stand-in with the same
calls that records what the driver asked of each line; what must hold: the amplifier line follows
``power`` (inverted when active-low), the fault line is read as the amplifier's fault, and a board
without the library or the chip gets a clear error naming the fix."""

from __future__ import annotations

import enum
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from firmware_sim.unit.power import AMP_FAULT, GpioPower, PowerSetupError, make_power
from firmware_sim.unit.state import PowerSettings


class Value(enum.Enum):
    INACTIVE = 0
    ACTIVE = 1


class Direction(enum.Enum):
    INPUT = 1
    OUTPUT = 2


class FakeChip:
    """What libgpiod's request_lines hands back: line values the test can read and set."""

    def __init__(self, chip: str, config: dict[int, Any]) -> None:
        if chip != "/dev/gpiochip0":
            raise FileNotFoundError(2, "No such file or directory", chip)
        self.config = config
        self.values = {line: getattr(s, "output_value", Value.INACTIVE) for line, s in config.items()}

    def set_value(self, line: int, value: Value) -> None:
        assert self.config[line].direction is Direction.OUTPUT, "only an output line is driven"
        self.values[line] = value

    def get_value(self, line: int) -> Value:
        return self.values[line]


def fake_gpiod() -> tuple[Any, list[FakeChip]]:
    chips: list[FakeChip] = []

    def request_lines(chip: str, *, consumer: str, config: dict[int, Any]) -> FakeChip:
        assert consumer
        c = FakeChip(chip, config)
        chips.append(c)
        return c

    module = SimpleNamespace(line=SimpleNamespace(Value=Value, Direction=Direction),
                             LineSettings=lambda **kw: SimpleNamespace(**kw), request_lines=request_lines)
    return module, chips


def test_the_amplifier_line_follows_power() -> None:
    gpiod, chips = fake_gpiod()
    amp = GpioPower(PowerSettings(driver="gpio", line=17), gpiod)
    assert chips[0].values[17] is Value.INACTIVE  # off until the unit says otherwise
    amp.set(True)
    assert chips[0].values[17] is Value.ACTIVE
    amp.set(False)
    assert chips[0].values[17] is Value.INACTIVE
    assert amp.faults() == []  # no fault line wired


def test_active_low_inverts_and_the_fault_line_is_read() -> None:
    gpiod, chips = fake_gpiod()
    amp = GpioPower(PowerSettings(driver="gpio", line=5, active_low=True, fault_line=6), gpiod)
    amp.set(True)
    assert chips[0].values[5] is Value.INACTIVE  # active-low relay board: on = low
    assert chips[0].config[6].direction is Direction.INPUT and chips[0].config[6].active_low is True
    assert amp.faults() == []
    chips[0].values[6] = Value.ACTIVE  # the amplifier raises its fault output
    assert amp.faults() == [AMP_FAULT]


def test_a_missing_chip_or_library_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    gpiod, _chips = fake_gpiod()
    with pytest.raises(PowerSetupError, match="/dev/gpiochip9"):
        GpioPower(PowerSettings(driver="gpio", chip="/dev/gpiochip9"), gpiod)
    monkeypatch.setitem(sys.modules, "gpiod", None)  # the package is not installed
    with pytest.raises(PowerSetupError, match="pip install gpiod"):
        make_power(PowerSettings(driver="gpio"))
    assert make_power(PowerSettings()).name == "none"
