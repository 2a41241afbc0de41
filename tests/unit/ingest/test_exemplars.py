"""ExemplarBudget: the window's best exemplars are always admitted, and few others are."""

from __future__ import annotations

import random

import pytest

from pipeline.ingest.exemplars import ExemplarBudget
from pipeline.windows.red_stats import Exemplar, best_exemplars


def _cuts(seed: int, cuts: int, per_cut: int, error_rate: float) -> list[list[Exemplar]]:
    rng = random.Random(seed)
    return [
        [
            Exemplar(
                f"{rng.getrandbits(128):032x}", rng.randint(1, 10**9), rng.random() < error_rate
            )
            for _ in range(per_cut)
        ]
        for _ in range(cuts)
    ]


@pytest.mark.parametrize(
    ("seed", "cuts", "per_cut", "error_rate", "limit"),
    [
        (1, 60, 100, 0.0, 3),  # a minute of 1 s cuts, 100 traces each
        (2, 60, 100, 0.01, 3),
        (3, 60, 10, 0.2, 3),
        (4, 600, 50, 0.001, 1),
    ],
)
def test_best_are_admitted_and_the_rest_mostly_not(
    seed: int, cuts: int, per_cut: int, error_rate: float, limit: int
) -> None:
    budget = ExemplarBudget(limit)
    admitted: list[Exemplar] = []
    every: list[Exemplar] = []
    for candidates in _cuts(seed, cuts, per_cut, error_rate):
        every.extend(candidates)
        # The aggregator already hands over only each cut's best few.
        admitted.extend(budget.admit("w", best_exemplars(candidates, limit)))
    assert best_exemplars(admitted, limit) == best_exemplars(every, limit)
    # Record-breaking values: about limit * ln(n), far below one per cut.
    assert len(admitted) < cuts / 2


def test_windows_have_separate_budgets_and_lru_forgets_old_ones() -> None:
    budget = ExemplarBudget(limit=1, max_keys=2)
    slow = Exemplar("a" * 32, 100, False)
    assert budget.admit("w0", [slow]) == (slow,)
    assert budget.admit("w1", [slow]) == (slow,)  # another window: admitted again
    assert budget.admit("w0", [slow]) == ()  # same window, same trace: nothing new
    budget.admit("w2", [slow])  # w1 is now the least recently used: forgotten
    assert budget.admit("w1", [slow]) == (slow,)
