"""Behaviour of the residual detectors: warm-up, empty windows, level shifts, directions."""

from __future__ import annotations

import random

from pipeline.detect.base import VALUE_SPECS, FeatureSpec
from pipeline.detect.residual import RobustConfig, RobustDetector


def window(rng: random.Random, latency: float = 1.0, requests: float = 300.0) -> dict[str, float]:
    return {
        "requests": requests,
        "error_ratio": 0.01,
        "p50_ms": 40.0 * latency * (1 + rng.gauss(0, 0.03)),
        "p95_ms": 100.0 * latency * (1 + rng.gauss(0, 0.05)),
        "p99_ms": 120.0 * latency * (1 + rng.gauss(0, 0.08)),
    }


def scores(d: RobustDetector, rows: list[dict[str, float]]) -> list[float]:
    out = []
    for x in rows:
        out.append(d.score_one(x))
        d.learn_one(x)
    return out


def test_no_alert_during_warm_up_even_on_wild_values() -> None:
    d = RobustDetector(RobustConfig(warmup=20))
    rng = random.Random(1)
    rows = [window(rng, latency=rng.choice([1.0, 10.0])) for _ in range(20)]
    assert scores(d, rows) == [0.0] * 20


def test_level_shift_stops_alerting_after_rebaseline() -> None:
    d = RobustDetector(RobustConfig(rebaseline_after=15))
    rng = random.Random(2)
    scores(d, [window(rng) for _ in range(200)])
    after = scores(d, [window(rng, latency=1.8) for _ in range(60)])
    assert all(s >= 0.5 for s in after[:15])
    assert not any(s >= 0.5 for s in after[20:])


def test_latency_drop_is_not_an_alert_but_traffic_drop_is() -> None:
    d = RobustDetector()
    rng = random.Random(3)
    scores(d, [window(rng) for _ in range(200)])
    assert d.score_one(window(rng, latency=0.2)) < 0.5
    assert d.score_one(window(rng, requests=20.0)) >= 0.5


def test_empty_window_on_quiet_series_is_not_an_alert() -> None:
    d = RobustDetector()
    rng = random.Random(4)
    quiet = [window(rng, requests=float(rng.choice([2, 3, 4, 5]))) for _ in range(300)]
    scores(d, quiet)
    empty = {"requests": 0.0, "error_ratio": 0.0, "p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    assert d.score_one(empty) < 0.5


def test_one_error_in_three_requests_is_not_an_alert() -> None:
    d = RobustDetector()
    rng = random.Random(5)
    scores(d, [window(rng, requests=3.0) | {"error_ratio": 0.0} for _ in range(300)])
    assert d.score_one(window(rng, requests=3.0) | {"error_ratio": 1 / 3}) < 0.5


def test_error_burst_on_busy_series_is_an_alert() -> None:
    d = RobustDetector()
    rng = random.Random(6)
    scores(d, [window(rng) for _ in range(300)])
    assert d.score_one(window(rng) | {"error_ratio": 0.1}) >= 0.5


def test_univariate_series_both_directions() -> None:
    d = RobustDetector(specs=VALUE_SPECS)
    rng = random.Random(7)
    scores(d, [{"value": 100 + rng.gauss(0, 2)} for _ in range(200)])
    assert d.score_one({"value": 150.0}) >= 0.5
    assert d.score_one({"value": 50.0}) >= 0.5
    assert d.score_one({"value": 101.0}) < 0.5


def test_direction_of_spec() -> None:
    assert FeatureSpec("x", direction="up").directed(-3.0) == 0.0
    assert FeatureSpec("x", direction="down").directed(-3.0) == 3.0
    assert FeatureSpec("x").directed(-3.0) == 3.0
