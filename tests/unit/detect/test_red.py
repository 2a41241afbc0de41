"""The worker's detector ``red``: short warm-up without a false-alarm burst, directions, volume.

Table-driven over simulated windows (Poisson counts, lognormal latencies summarised
per window, as ``pipeline.evaluate.scenarios`` draws them). ``robust`` is the
reference each test would fail with: it is silent for 30 windows.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detect.base import WARNING_SCORE, Detector
from pipeline.detect.red import RedConfig, RedDetector
from pipeline.detect.registry import build_detector


def window(rng: np.random.Generator, rate: float, median_ms: float, sigma: float = 0.6) -> dict:
    n = int(rng.poisson(rate))
    lat = rng.lognormal(np.log(median_ms), sigma, n) if n else np.zeros(1)
    p50, p95, p99 = (float(np.percentile(lat, q)) if n else 0.0 for q in (50, 95, 99))
    return {"requests": float(n), "error_ratio": 0.0, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def alarms(d: Detector, rows: list[dict]) -> list[int]:
    """Indices of the windows scored at or above the alert threshold (score-then-learn)."""
    out = []
    for i, x in enumerate(rows):
        if d.score_one(x) >= WARNING_SCORE:
            out.append(i)
        d.learn_one(x)
    return out


def quiet(rate: float, median_ms: float, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [window(rng, rate, median_ms) for _ in range(n)]


@pytest.mark.parametrize(
    ("rate", "median_ms"),
    [(2000.0, 5.0), (300.0, 40.0), (50.0, 200.0), (15.0, 8.0), (7.0, 200.0), (3.0, 40.0)],
)
def test_no_false_alarm_burst_while_warming_up(rate: float, median_ms: float) -> None:
    """Stationary series, busy to 3 requests a window: no alert in the first 60 windows."""
    for seed in range(5):
        assert alarms(RedDetector(), quiet(rate, median_ms, 60, seed)) == []


@pytest.mark.parametrize(
    ("change", "rate"),
    [
        ({"p50": 10.0}, 300.0),  # a CPU-starved service: every request 10x slower
        ({"p50": 10.0}, 15.0),  # ... also at 15 requests a window
        ({"rate": 0.2}, 300.0),  # traffic drop
        ({"rate": 4.0}, 300.0),  # traffic surge
    ],
)
def test_alerts_on_the_third_window(change: dict[str, float], rate: float) -> None:
    """Two normal windows are enough history; ``robust`` would wait 30."""
    rng = np.random.default_rng(1)
    rows = [window(rng, rate, 40.0) for _ in range(2)]
    rows.append(window(rng, rate * change.get("rate", 1.0), 40.0 * change.get("p50", 1.0)))
    assert alarms(RedDetector(), rows) == [2]
    assert alarms(build_detector("robust"), rows) == []


def after_history(x: dict, rate: float = 300.0, median_ms: float = 40.0) -> tuple[float, tuple]:
    """Score and explanation of ``x`` after 40 normal windows."""
    d = RedDetector()
    for row in quiet(rate, median_ms, 40, 3):
        d.learn_one(row)
    return d.score_one(x), tuple(dev.name for dev in d.explain_one(x))


BASE = {"requests": 300.0, "error_ratio": 0.0, "p50_ms": 40.0, "p95_ms": 108.0, "p99_ms": 162.0}


@pytest.mark.parametrize(
    ("label", "changes", "alerts_on"),
    [
        ("traffic drop", {"requests": 60.0}, ("requests",)),
        ("traffic surge", {"requests": 1200.0}, ("requests",)),
        ("latency up", {"p50_ms": 120.0}, ("p50_ms",)),
        ("p50 drop with a traffic drop", {"p50_ms": 10.0, "requests": 150.0}, ("requests",)),
        ("p50 drop alone (a recovery)", {"p50_ms": 10.0}, ()),
        ("p50 down 30 %", {"p50_ms": 28.0, "requests": 150.0}, ("requests",)),
        ("p95 drop", {"p95_ms": 30.0}, ()),
        ("error ratio up", {"error_ratio": 0.2}, ("error_ratio",)),
        ("error ratio down", {"error_ratio": 0.0}, ()),
    ],
)
def test_directions(label: str, changes: dict[str, float], alerts_on: tuple[str, ...]) -> None:
    score, names = after_history({**BASE, **changes})
    assert (score >= WARNING_SCORE) == bool(alerts_on), label
    assert set(alerts_on) <= set(names), label


def test_a_p50_drop_with_a_traffic_change_names_the_p50() -> None:
    """Traffic halved and p50 at a quarter: both deviate (a path failing fast)."""
    _, names = after_history({**BASE, "p50_ms": 10.0, "requests": 150.0})
    assert "p50_ms" in names


@pytest.mark.parametrize(
    ("rate", "factor", "alerts"),
    [
        (7.0, 2.0, False),  # 5-10 requests a window: a doubled p50 is noise
        (7.0, 3.0, False),
        (7.0, 30.0, True),  # ... a 30x p50 is not
        (300.0, 2.0, True),  # the same doubling with volume is an incident
    ],
)
def test_minimum_volume(rate: float, factor: float, alerts: bool) -> None:
    """The smallest p50 change that alerts grows as the request count falls."""
    rng = np.random.default_rng(5)
    rows = [window(rng, rate, 200.0) for _ in range(40)]
    spike = {**window(rng, rate, 200.0), "requests": rate}
    spike["p50_ms"] *= factor
    spike["p95_ms"] = spike["p99_ms"] = 0.0  # only the p50 speaks
    d = RedDetector()
    alarms(d, rows)
    assert (d.score_one(spike) >= WARNING_SCORE) == alerts


def test_sub_millisecond_latency_changes_never_alert() -> None:
    """A 0.1 ms p99 that quadruples is no incident; 100 ms is."""
    rng = np.random.default_rng(2)
    rows = [window(rng, 2000.0, 0.1, sigma=0.3) for _ in range(40)]
    d = RedDetector()
    assert alarms(d, rows) == []
    x = dict(rows[-1])
    assert d.score_one({**x, "p99_ms": x["p99_ms"] * 4}) < WARNING_SCORE
    assert d.score_one({**x, "p99_ms": 100.0}) >= WARNING_SCORE


def test_configuration_is_validated_by_the_registry() -> None:
    assert build_detector("red", {"warmup": "5"}).config == RedConfig(warmup=5)
    with pytest.raises(KeyError, match="unknown parameter"):
        build_detector("red", {"nope": "1"})


@pytest.mark.parametrize(
    ("key", "value"),
    [("min_drop", "1"), ("min_drop", "0"), ("warmup", "0"), ("latency_sd_per_sqrt", "nan")],
)
def test_out_of_range_parameters_are_refused_by_name(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=key):
        build_detector("red", {key: value})
