"""Page's CUSUM in the residual detectors: slow drifts caught earlier, stationary noise not."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from pipeline.detect.base import VALUE_SPECS, WINDOW_SPECS, Features, z_to_score
from pipeline.detect.residual import RobustConfig, RobustDetector, cusum_step
from pipeline.evaluate import metrics
from pipeline.evaluate.scenarios import Operation, Scenario
from tests.unit.detect.test_residual import window

WITHOUT = RobustConfig(cusum_h=0.0, alarm_clip=3.0)
"""The detector as it was before the CUSUM: point test only, alarms learnt winsorised."""


def alerts(d: RobustDetector, rows: list[dict[str, float]]) -> list[bool]:
    out = []
    for x in rows:
        out.append(d.score_one(x) >= 0.5)
        d.learn_one(x)
    return out


@pytest.mark.parametrize(
    ("zs", "expected"),
    [
        ([0.0, 1.0, 1.25], [(0.0, 0.0), (0.0, 0.0), (0.0, 0.0)]),  # noise under k: nothing
        ([2.25, 2.25, 2.25, 2.25], [(1.0, 0.0), (2.0, 0.0), (3.0, 0.0), (4.0, 0.0)]),
        ([3.25, -1.0, 0.0], [(2.0, 0.0), (0.0, 0.0), (0.0, 0.0)]),  # one outlier decays
        ([-2.25, -3.25, 2.0], [(0.0, 1.0), (0.0, 3.0), (0.75, 0.0)]),
    ],
)
def test_cusum_step(zs: list[float], expected: list[tuple[float, float]]) -> None:
    up, down, seen = 0.0, 0.0, []
    for z in zs:
        up, down = cusum_step(up, down, z, 1.25)
        seen += [up, down]
    assert seen == pytest.approx([s for pair in expected for s in pair])


@pytest.mark.parametrize(
    ("cusum", "score"),
    [(0.0, z_to_score(1.25, 4.25)), (2.0, 0.2), (4.0, 0.5), (8.0, 0.8)],
)
def test_cusum_maps_to_the_score_scale(cusum: float, score: float) -> None:
    """At the decision interval h the CUSUM scores 0.5, like a point z at the threshold.

    The window sits exactly ``k`` scales above the expectation, so the CUSUM
    keeps its value and the point test alone scores ``z_to_score(k)``.
    """
    cfg = RobustConfig()
    d = RobustDetector(cfg, VALUE_SPECS)
    rng = random.Random(1)
    for _ in range(100):
        d.learn_one({"value": 100 + rng.gauss(0, 2)})
    st, spec = d.states["value"], VALUE_SPECS[0]
    st.cusum_up, st.cusum_down = cusum, 0.0
    x: Features = {"value": st.model.expected() + cfg.cusum_k * d._scale(spec, st, {})}
    assert d.score_one(x) == pytest.approx(score)
    assert (st.cusum_up, st.cusum_down) == (cusum, 0.0)  # score_one does not learn


@pytest.mark.parametrize("slope", [0.01, 0.02, 0.03, 0.05])
def test_latency_drift_is_caught_earlier(slope: float) -> None:
    """Latency ramps by ``slope`` of its baseline per window; the drift matters from +10 %."""
    material = math.ceil(0.10 / slope)
    with_cusum, without = [], []
    for seed in range(4):
        rng = random.Random(seed)
        warm = [window(rng) for _ in range(300)]
        ramp = [window(rng, latency=1 + slope * i) for i in range(60)]
        for cfg, out in ((RobustConfig(), with_cusum), (WITHOUT, without)):
            fired = alerts(RobustDetector(cfg), warm + ramp)[300:]
            out.append(fired.index(True) if any(fired) else len(ramp))
    assert all(a <= b for a, b in zip(with_cusum, without, strict=True))
    assert sum(with_cusum) < sum(without)
    assert statistics.median(a - material for a in with_cusum) <= 2


QUIET = Scenario("quiet", Operation(), lambda eff, rng: None)


@pytest.mark.parametrize(
    "op",
    [
        Operation(),
        Operation(daily_amplitude=0.8, load_latency=0.3),
        Operation(rate=30.0),
        Operation(rate=3.0, error_p=0.02),
    ],
    ids=["busy", "seasonal", "medium", "quiet"],
)
@pytest.mark.parametrize("seed", [50, 51])
def test_stationary_noise_does_not_alarm_more(op: Operation, seed: int) -> None:
    series = Scenario("stationary", op, QUIET.inject).generate(2, seed)
    with_cusum = metrics.onsets(alerts(RobustDetector(), series.features))
    without = metrics.onsets(alerts(RobustDetector(WITHOUT), series.features))
    assert len(with_cusum) <= len(without)
    assert len(with_cusum) <= 2  # at most one false alarm a day


def test_falling_latency_never_alerts() -> None:
    """Latency alerts upwards only; its downward CUSUM is never scored."""
    rng = random.Random(8)
    rows = [window(rng) for _ in range(300)]
    rows += [window(rng, latency=max(0.4, 1 - 0.03 * i)) for i in range(100)]
    assert not any(alerts(RobustDetector(), rows))


def test_traffic_has_no_cusum() -> None:
    """The daily traffic curve is a slow drift itself: a traffic ramp scores as before."""
    assert not next(s for s in WINDOW_SPECS if s.name == "requests").cusum
    rng = random.Random(9)
    steady = {"error_ratio": 0.01, "p50_ms": 40.0, "p95_ms": 100.0, "p99_ms": 120.0}
    rates = [300.0] * 300 + [300.0 * (1 + 0.02 * i) for i in range(60)]
    rows = [steady | {"requests": float(round(rng.gauss(r, math.sqrt(r))))} for r in rates]
    runs = []
    for cfg in (RobustConfig(alarm_clip=3.0), WITHOUT):
        d, scores = RobustDetector(cfg), []
        for x in rows:
            scores.append(d.score_one(x))
            d.learn_one(x)
        runs.append(scores)
    assert runs[0] == runs[1]
    assert max(runs[0][300:]) < 0.5  # organic growth: the EWMA follows it
