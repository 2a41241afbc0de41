"""The simulator: deterministic, labelled where intended, statistically sane."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate.metrics import events
from pipeline.evaluate.scenarios import (
    SCENARIOS,
    SHIFT_EVENT_WINDOWS,
    WINDOWS_PER_DAY,
    _percentiles,
)

BY_NAME = {s.name: s for s in SCENARIOS}


def test_percentiles_match_numpy() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(4, size=40)
    counts[:2] = [0, 1]
    values = rng.lognormal(3, 0.5, size=counts.sum())
    got = _percentiles(values, counts, (50, 99))
    for i, seg in enumerate(np.split(values, np.cumsum(counts)[:-1])):
        expected = np.percentile(seg, [50, 99]) if len(seg) else [0.0, 0.0]
        assert got[i] == pytest.approx(expected)


def test_generation_is_deterministic_and_first_day_clean() -> None:
    a, b = (BY_NAME["latency_spike"].generate(2, seed=3) for _ in range(2))
    assert a.features == b.features and a.labels == b.labels
    assert len(a.labels) == 2 * WINDOWS_PER_DAY
    assert not any(a.labels[:WINDOWS_PER_DAY]) and any(a.labels)


def test_level_shift_labels_only_the_first_windows() -> None:
    series = BY_NAME["level_shift"].generate(2, seed=1)
    [(start, end)] = events(series.labels)
    assert end - start == SHIFT_EVENT_WINDOWS
    before = np.median([x["p50_ms"] for x in series.features[start - 100 : start]])
    after = np.median([x["p50_ms"] for x in series.features[end : end + 100]])
    assert after / before == pytest.approx(1.8, rel=0.1)


def test_seasonality_scenario_has_no_event_but_a_daily_curve() -> None:
    series = BY_NAME["daily_seasonality"].generate(2, seed=1)
    assert not any(series.labels)
    requests = [x["requests"] for x in series.features]
    assert max(requests) > 5 * min(requests)


def test_low_traffic_has_empty_windows() -> None:
    series = BY_NAME["low_traffic"].generate(2, seed=1)
    empty = [x for x in series.features if x["requests"] == 0]
    assert empty and all(x["p99_ms"] == 0.0 for x in empty)
