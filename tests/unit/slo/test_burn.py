"""Burn rates, remaining budget and multiwindow firing against worked examples."""

from __future__ import annotations

import pytest

from pipeline.slo.burn import (
    budget_remaining,
    budget_spent,
    budget_step_ns,
    burn_rate,
    evaluate,
    fine_size,
    windows_of,
)
from pipeline.slo.ring import Counts, Ring
from pipeline.slo.spec import DEFAULT_BURN_ALERTS, BurnAlertRule, Slo

S = 1_000_000_000
MIN = 60 * S
SLO = Slo("checkout", "shop", (), "availability", 99.9)


@pytest.mark.parametrize(
    ("rate", "seconds", "spent"),
    [
        # The SRE workbook's table: budget spent when each default rule fires (30 days).
        (14.4, 3600, 0.02),
        (6.0, 6 * 3600, 0.05),
        (3.0, 86400, 0.10),
        (1.0, 3 * 86400, 0.10),
        (1.0, 30 * 86400, 1.0),
    ],
)
def test_budget_spent_by_a_steady_burn(rate: float, seconds: int, spent: float) -> None:
    assert budget_spent(rate, seconds, 30 * 86400) == pytest.approx(spent)


@pytest.mark.parametrize(
    ("good", "total", "budget", "rate"),
    [
        (9856, 10000, 0.001, 14.4),  # 1.44 % errors at 99.9 %
        (9940, 10000, 0.001, 6.0),
        (999, 1000, 0.001, 1.0),
        (1000, 1000, 0.001, 0.0),
        (0, 0, 0.001, 0.0),  # no requests: nothing burns
        (0, 10, 0.01, 100.0),  # all bad at 99 %
    ],
)
def test_burn_rate(good: int, total: int, budget: float, rate: float) -> None:
    assert burn_rate(Counts(good, total), budget) == pytest.approx(rate)


@pytest.mark.parametrize(
    ("good", "total", "remaining"),
    [(1000, 1000, 1.0), (999, 1000, 0.0), (9995, 10000, 0.5), (990, 1000, -9.0), (0, 0, 1.0)],
)
def test_budget_remaining(good: int, total: int, remaining: float) -> None:
    assert budget_remaining(Counts(good, total), 0.001) == pytest.approx(remaining)


def test_ring_sizes_follow_the_rules_and_window() -> None:
    assert fine_size(SLO, MIN) == 3 * 24 * 60  # the 3-day ticket rule
    assert budget_step_ns(SLO, MIN) == 3600 * S  # 30 days in 720 hourly buckets
    assert windows_of(300, 7 * S) == 43  # a 5 m window of 7 s windows: rounded up
    assert windows_of(30, MIN) == 1


def _rings(slo: Slo, window_ns: int, per_window: list[tuple[int, int]]) -> tuple[Ring, Ring]:
    fine = Ring(window_ns, fine_size(slo, window_ns))
    coarse = Ring(budget_step_ns(slo, window_ns), 721)
    for i, (good, total) in enumerate(per_window):
        fine.add(i * window_ns, good, total)
        coarse.add(i * window_ns, good, total)
    return fine, coarse


def test_one_hour_at_14_4x_pages_and_spends_2_percent_of_a_uniform_month() -> None:
    # 30 days of hourly windows, 10,000 requests each; the last hour at 1.44 % errors.
    slo = Slo("c", "shop", (), "availability", 99.9, burn_alerts=DEFAULT_BURN_ALERTS)
    hour = 3600 * S
    windows = [(10_000, 10_000)] * 719 + [(9_856, 10_000)]
    fine, coarse = _rings(slo, hour, windows)
    burn = evaluate(slo, fine, coarse, 719 * hour, hour)
    assert burn.rates[3600] == pytest.approx(14.4)
    assert burn.budget_remaining == pytest.approx(1 - 0.02)
    # 14.4 is not *above* 14.4; the 5 m window is the same hour bucket here.
    assert burn.firing == ()
    windows[-1] = (9_850, 10_000)  # 15x
    fine, coarse = _rings(slo, hour, windows)
    burn = evaluate(slo, fine, coarse, 719 * hour, hour)
    assert burn.firing == ("page",)
    assert burn.triggered["page"] == DEFAULT_BURN_ALERTS[0]
    assert (burn.window.good, burn.window.total) == (9_850, 10_000)


@pytest.mark.parametrize(
    ("long_rate", "short_rate", "fires"),
    [
        (20, 20, True),  # both windows above 10x
        (2, 20, False),  # a blip: the long window holds it back
        (12, 0, False),  # the burst is over: the short window resets the alert
        (11, 11, True),
        (10, 10, False),  # exactly the factor is not above it
    ],
)
def test_both_windows_must_burn(long_rate: int, short_rate: int, fires: bool) -> None:
    # 10 windows of 1 min, 1000 requests each, 99 % objective; page at 10x over 10m and 1m.
    # A burn rate r is 10 * r errors per 1000 requests.
    rule = BurnAlertRule("page", 600, 60, 10.0)
    slo = Slo("c", "shop", (), "availability", 99.0, burn_alerts=(rule,))
    rest = long_rate * 100 - short_rate * 10  # the long window's errors before the last
    first = [(1000 - rest // 9 - (1 if i < rest % 9 else 0), 1000) for i in range(9)]
    fine, coarse = _rings(slo, MIN, [*first, (1000 - short_rate * 10, 1000)])
    burn = evaluate(slo, fine, coarse, 9 * MIN, MIN)
    assert burn.rates[600] == pytest.approx(long_rate)
    assert burn.rates[60] == pytest.approx(short_rate)
    assert (burn.firing == ("page",)) is fires
