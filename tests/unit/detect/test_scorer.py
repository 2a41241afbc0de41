"""WindowScorer: per-series models, verdicts, persistence."""

from __future__ import annotations

import random

from pipeline.detect.base import Severity
from pipeline.detect.scorer import Verdict, WindowScorer, build_default

KEY_A = ("checkout", "POST /pay")
KEY_B = ("search", "GET /q")


def window(rng: random.Random, latency: float = 1.0) -> dict[str, float]:
    return {
        "requests": float(rng.randint(280, 320)),
        "error_ratio": rng.random() * 0.01,
        "p50_ms": 40.0 * latency * (1 + rng.gauss(0, 0.03)),
        "p95_ms": 100.0 * latency * (1 + rng.gauss(0, 0.05)),
        "p99_ms": 120.0 * latency * (1 + rng.gauss(0, 0.08)),
    }


def feed(scorer: WindowScorer, key: tuple[str, str], n: int, seed: int) -> list[Verdict]:
    rng = random.Random(seed)
    return [scorer.score(key, window(rng)) for _ in range(n)]


def test_spike_verdict_names_the_deviating_metrics() -> None:
    scorer = build_default()
    feed(scorer, KEY_A, 200, seed=1)
    verdict = scorer.score(KEY_A, window(random.Random(9), latency=7.0))
    assert verdict.anomalous and verdict.severity is Severity.CRITICAL
    names = {name for name, _, _ in verdict.metrics}
    assert {"p50_ms", "p99_ms"} <= names
    p99 = next(m for m in verdict.metrics if m[0] == "p99_ms")
    assert p99[1] > 500 and 90 < p99[2] < 160
    assert verdict.detector == "red"


def test_normal_window_is_not_anomalous() -> None:
    scorer = build_default()
    verdicts = feed(scorer, KEY_A, 300, seed=2)
    assert not any(v.anomalous for v in verdicts)
    assert all(v.metrics == () and v.severity is Severity.NONE for v in verdicts)


def test_series_keep_separate_models() -> None:
    scorer = build_default()
    feed(scorer, KEY_A, 100, seed=3)
    assert scorer.score(KEY_B, window(random.Random(4), latency=7.0)).score == 0.0  # warm-up
    assert set(scorer.models) == {KEY_A, KEY_B}
