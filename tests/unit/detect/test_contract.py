"""One contract every detector must meet (in the spirit of river/checks/anomaly.py)."""

from __future__ import annotations

import json
import math
import random

import pytest

from pipeline.detect.base import Detector
from pipeline.detect.registry import CONFIGS, DETECTORS, build_detector, params_for
from pipeline.detect.state import from_state

FAST = {"warmup": "10", "season_length": "24", "window_size": "20", "rebaseline_after": "5"}
VARIANTS = {
    "robust-no-cusum": ("robust", {"cusum_h": "0", "alarm_clip": "3"}),  # the point test only
    "robust-cusum-h1": ("robust", {"cusum_h": "1"}),  # CUSUM alarms and restarts often
    "seasonal-cusum": ("seasonal", {"cusum_h": "4", "alarm_clip": "0"}),
    "tail-all-views": ("tail", {"change_view": "1", "sustain": "5"}),  # with the season view
    "tail-raw": ("tail", {"refractory": "0", "season_length": "0"}),  # level view, no refractory
}
NAMES = (*DETECTORS, *VARIANTS)
"""Every registered detector, plus configurations that switch the CUSUM off and on."""


def make(name: str) -> Detector:
    if name in VARIANTS:
        base, params = VARIANTS[name]
        return build_detector(base, params_for(CONFIGS[base], FAST) | params)
    if name in ("random", "combined"):
        return build_detector(name, {} if name == "random" else FAST)
    return build_detector(name, params_for(CONFIGS[name], FAST))


def stream(n: int = 200, seed: int = 7) -> list[dict[str, float]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        requests = rng.choice([0.0, 3.0]) if i % 17 == 0 else float(rng.randint(80, 120))
        spike = 6.0 if i in (150, 151) else 1.0
        rows.append(
            {
                "requests": requests,
                "error_ratio": rng.random() * 0.02,
                "p50_ms": 20.0 * spike * (1 + rng.random() * 0.1),
                "p95_ms": 60.0 * spike * (1 + rng.random() * 0.1),
                "p99_ms": 90.0 * spike * (1 + rng.random() * 0.1),
            }
        )
    return rows


def run(d: Detector, rows: list[dict[str, float]]) -> list[float]:
    out = []
    for x in rows:
        out.append(d.score_one(x))
        d.learn_one(x)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_in_unit_interval(name: str) -> None:
    scores = run(make(name), stream())
    assert all(0.0 <= s <= 1.0 for s in scores)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name: str) -> None:
    assert run(make(name), stream()) == run(make(name), stream())


@pytest.mark.parametrize("name", NAMES)
def test_score_one_does_not_change_the_model(name: str) -> None:
    rows = stream()
    probe, twin = make(name), make(name)
    run(probe, rows[:120])
    run(twin, rows[:120])
    for _ in range(5):
        probe.score_one({"requests": 1e6, "p99_ms": 1e6, "p50_ms": 1e6})
    assert run(probe, rows[120:]) == run(twin, rows[120:])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "x",
    [
        {},
        {"requests": 0.0},
        {"requests": 0.0, "p99_ms": 0.0, "error_ratio": 0.0},
        {"requests": 5.0, "p99_ms": math.nan},
        {"requests": 100.0, "p50_ms": math.inf},
    ],
)
def test_handles_missing_zero_and_non_finite_features(name: str, x: dict[str, float]) -> None:
    d = make(name)
    run(d, stream(80))
    score = d.score_one(x)
    d.learn_one(x)
    assert 0.0 <= score <= 1.0
    assert 0.0 <= d.score_one(stream(1)[0]) <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_scores_identically(name: str) -> None:
    rows = stream()
    d = make(name)
    run(d, rows[:130])
    clone = from_state(json.loads(json.dumps(d.to_state())), make(name))
    assert run(clone, rows[130:]) == run(d, rows[130:])


@pytest.mark.parametrize("name", ["robust", "combined", "robust-no-cusum"])
def test_spike_scores_above_every_normal_window(name: str) -> None:
    scores = run(make(name), stream())
    # Every 17th window is a (real) traffic drop; the rest are normal.
    normal = [s for i, s in enumerate(scores[100:140], 100) if i % 17]
    assert scores[150] >= 0.5 > max(normal)


@pytest.mark.parametrize("name", ["seasonal", "hst"])
def test_spike_scores_above_typical_window(name: str) -> None:
    scores = run(make(name), stream())
    assert scores[150] > sorted(scores[100:140])[20]
