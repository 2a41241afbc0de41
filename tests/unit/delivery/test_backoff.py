"""Which answers are retried, and the backoff schedule with jitter."""

from __future__ import annotations

import pytest

from pipeline.delivery.backoff import Backoff, verdict


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (204, "delivered"),
        (None, "retry"),  # refused, reset, timed out
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (408, "retry"),
        (425, "retry"),
        (429, "retry"),
        (400, "permanent"),
        (401, "permanent"),
        (403, "permanent"),
        (404, "permanent"),
        (413, "permanent"),
        (422, "permanent"),
        (301, "permanent"),  # a redirected POST: the URL is wrong
        (307, "permanent"),
        (100, "permanent"),
    ],
)
def test_verdict(status: int | None, expected: str) -> None:
    assert verdict(status) == expected


POLICY = Backoff(initial=0.5, ceiling=30.0)


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        (1, 1.0, 0.5),
        (2, 1.0, 1.0),
        (3, 1.0, 2.0),
        (6, 1.0, 16.0),
        (7, 1.0, 30.0),  # 32 capped
        (10_000, 1.0, 30.0),  # no overflow however long the outage
        (1, 0.0, 0.25),  # jitter: never below half the schedule
        (7, 0.0, 15.0),
        (7, 0.5, 22.5),
        (0, 1.0, 0.5),  # out-of-range inputs are clamped, not trusted
        (3, 7.0, 2.0),
        (3, -1.0, 1.0),
    ],
)
def test_delay(attempt: int, jitter: float, expected: float) -> None:
    assert POLICY.delay(attempt, jitter) == pytest.approx(expected)


def test_a_receiver_down_for_minutes_is_retried_at_the_ceiling() -> None:
    """Ten minutes of failures: the delays add up past 600 s, each at most the ceiling."""
    delays, total, attempt = [], 0.0, 0
    while total < 600:
        attempt += 1
        delays.append(POLICY.delay(attempt, jitter=0.5))
        total += delays[-1]
    assert max(delays) <= 30.0 and attempt < 40
