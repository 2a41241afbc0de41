"""ManualClock and SystemClock honour the Clock protocol."""

from __future__ import annotations

import pytest

from pipeline.clock import Clock, ManualClock, SystemClock


@pytest.mark.parametrize(
    ("start", "steps", "expected"),
    [
        (0.0, [], 0.0),
        (0.0, [1.0, 2.5], 3.5),
        (100.0, [0.0, 0.25], 100.25),
    ],
)
def test_manual_clock_advances_exactly(start: float, steps: list[float], expected: float) -> None:
    clock = ManualClock(start)
    for step in steps:
        clock.advance(step)
    assert clock.now() == expected


def test_manual_clock_rejects_going_backwards() -> None:
    clock = ManualClock(5.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1.0)
    assert clock.now() == 5.0


def test_system_clock_is_monotonic() -> None:
    clock: Clock = SystemClock()
    readings = [clock.now() for _ in range(1000)]
    assert readings == sorted(readings)


def test_manual_clock_satisfies_protocol() -> None:
    clock: Clock = ManualClock()
    assert clock.now() == 0.0
