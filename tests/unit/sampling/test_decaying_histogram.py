"""Forgetting histogram: quantile accuracy, bounded bins, decay."""

from __future__ import annotations

import random

import pytest

from pipeline.sampling.decaying_histogram import DecayingHistogram


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_quantile_is_an_upper_bound_within_accuracy(q: float) -> None:
    rng = random.Random(1)
    values = sorted(rng.lognormvariate(15, 1.2) for _ in range(5000))
    h = DecayingHistogram(accuracy=0.02, horizon=1e9)
    for v in values:
        h.add(v)
    exact = values[int(q * len(values)) - 1]
    estimate = h.quantile(q)
    assert exact <= estimate <= exact * h.gamma**2


def test_empty_histogram_answers_zero() -> None:
    assert DecayingHistogram().quantile(0.99) == 0.0


def test_bins_are_bounded_and_low_values_fold_up() -> None:
    h = DecayingHistogram(accuracy=0.01, max_bins=10)
    for i in range(1, 2000):
        h.add(float(i * 1000))
    assert len(h.to_dict()["bins"]) == 10
    assert h.quantile(1.0) >= 1999 * 1000


def test_weight_stays_below_horizon() -> None:
    h = DecayingHistogram(horizon=100)
    for _ in range(10_000):
        h.add(5.0)
    assert 50 <= h.count < 100


@pytest.mark.parametrize(
    "kwargs", [{"accuracy": 0.0}, {"accuracy": 1.0}, {"horizon": 1}, {"max_bins": 0}]
)
def test_rejects_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DecayingHistogram(**kwargs)


def test_rejects_bad_quantile() -> None:
    with pytest.raises(ValueError, match="quantile"):
        DecayingHistogram().quantile(1.5)
