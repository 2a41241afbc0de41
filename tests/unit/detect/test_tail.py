"""The tail detector: calibrated across series, no collapse, no saturation, one alarm per onset."""

from __future__ import annotations

import math
import random

import pytest

from pipeline.detect.base import VALUE_SPECS, WARNING_SCORE, FeatureSpec
from pipeline.detect.registry import build_detector
from pipeline.detect.tail import TailConfig, TailDetector, neg_log10_tail


def scores(values: list[float], spec: FeatureSpec = VALUE_SPECS[0], **params: str) -> list[float]:
    d = build_detector("tail", params, specs=(spec,))
    out = []
    for v in values:
        out.append(d.score_one({"value": v}))
        d.learn_one({"value": v})
    return out


def onsets(s: list[float]) -> list[int]:
    return [i for i, v in enumerate(s) if v >= WARNING_SCORE and (i == 0 or s[i - 1] < 0.5)]


def noise(n: int, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(0.0, 1.0) for _ in range(n)]


@pytest.mark.parametrize(("a", "b"), [(1.0, 0.0), (1e-3, 5.0), (250.0, 1e6), (7.0, -40.0)])
def test_one_threshold_means_the_same_on_every_scale_and_level(a: float, b: float) -> None:
    """Scores are invariant under x -> a x + b: no floor tied to the level."""
    base = noise(600)
    base[400] += 8.0
    ref = scores(base)
    got = scores([a * v + b for v in base])
    assert got == pytest.approx(ref, abs=1e-9)
    assert got[400] >= WARNING_SCORE


@pytest.mark.parametrize(
    "series",
    [
        [0.0] * 50 + [1.0 if i % 37 == 0 else 0.0 for i in range(950)],  # mostly zero
        [float(round(10 + g)) for g in noise(1000)],  # integer counts
        [20.0 if (i // 100) % 2 else 10.0 for i in range(1000)],  # stepped
    ],
    ids=["sparse", "integer", "stepped"],
)
def test_scale_never_collapses_and_scores_never_saturate(series: list[float]) -> None:
    s = scores(series)
    assert max(s) < 0.999999  # 1.000000 when printed with 6 decimals
    # A step or a lone 1 in zeros may alarm once; it must not alarm on every point after it.
    assert sum(v >= WARNING_SCORE for v in s) <= len(series) // 50


def test_a_lone_one_among_zeros_is_within_the_resolution() -> None:
    """Rounding noise of an integer series (sd 1/sqrt(12)) does not alarm at 1 step."""
    series = [0.0] * 60 + [1.0] + [0.0] * 40 + [1.0]
    assert scores(series)[-1] < WARNING_SCORE


def test_a_level_shift_alarms_once_and_is_absorbed() -> None:
    series = noise(800)
    for i in range(400, 800):
        series[i] += 10.0
    s = scores(series)
    assert [i for i in onsets(s) if i >= 300] == [400]
    assert max(s[480:]) < WARNING_SCORE


def test_refractory_suppresses_repeats_after_an_onset() -> None:
    series = noise(600)
    for i, jump in ((400, 12.0), (405, 16.0), (410, 20.0)):  # each beyond all before it
        series[i] += jump
    raw = scores(series, refractory="0")
    quiet = scores(series)
    assert [i for i in (400, 405, 410) if raw[i] >= 0.5] == [400, 405, 410]
    after_warmup = [i for i in onsets(quiet) if i >= 300]
    assert after_warmup == [400] and quiet[405] < 0.5 and quiet[405] == raw[405] / 2


def test_direction_up_ignores_drops() -> None:
    series = noise(400)
    series[300] -= 20.0
    series[350] += 20.0
    s = scores(series, FeatureSpec("value", "identity", "up"))
    assert s[300] == 0.0 and s[350] >= WARNING_SCORE


def test_score_is_half_at_the_alert_probability() -> None:
    """A point beyond every one of 1,000 past residuals, by the fitted tail, at p = 1e-4."""
    d = TailDetector(TailConfig(alert_probability=1e-4, change_view=0), VALUE_SPECS)
    assert 4.0 / (4.0 + d._l0) == pytest.approx(0.5)


def test_tail_is_empirical_inside_the_window_and_exponential_beyond() -> None:
    window = sorted(abs(v) for v in noise(1000))
    inside = neg_log10_tail(window[500], window, 0.1, 1e-3)
    assert inside == pytest.approx(math.log10(1001 / 501))
    far = [neg_log10_tail(d, window, 0.1, 1e-3) for d in (5.0, 10.0, 100.0, 1e6)]
    assert far == sorted(far) and all(math.isfinite(v) for v in far)
    # Linear beyond the window: equal steps in d, equal steps in -log10 p.
    assert far[1] - far[0] == pytest.approx((far[2] - far[1]) / 18.0)


def sine_with_jump(jump: float) -> list[float]:
    """A daily curve (288 points a day) the recent median lags behind; a jump at 1200."""
    series = [10.0 * math.sin(2 * math.pi * i / 288) + 0.1 * g for i, g in enumerate(noise(1500))]
    return series[:1200] + [v + jump for v in series[1200:]]


@pytest.mark.parametrize("view", [{"change_view": "1"}, {"season_length": "288"}])
def test_change_and_season_views_catch_a_jump_on_a_daily_curve(view: dict[str, str]) -> None:
    """A jump of a tenth of the amplitude hides in the level view's lag residuals."""
    series = sine_with_jump(1.0)
    level_only = {"change_view": "0", "sustain": "0"}
    assert scores(series, **{**level_only, **view})[1200] >= WARNING_SCORE
    assert scores(series, **level_only)[1200] < WARNING_SCORE


def test_views_are_bonferroni_corrected() -> None:
    """Plain noise: more views, no more alarms than one view alone (p times the looks)."""
    series = noise(3000, seed=11)
    alarms = [
        sum(v >= WARNING_SCORE for v in scores(series, **p)[300:])
        for p in (
            {"change_view": "0", "sustain": "0"},
            {"change_view": "1", "sustain": "0"},
            {"change_view": "1", "sustain": "6", "season_length": "288"},
        )
    ]
    assert alarms[1] <= alarms[0] + 1 and alarms[2] <= alarms[0] + 1


@pytest.mark.parametrize(("seen", "most"), [(1, math.log10(1001 / 2)), (3, math.log10(1001 / 4))])
def test_a_residual_seen_before_is_no_rarer_than_its_count(seen: int, most: float) -> None:
    """The fitted tail may not call d rarer than the ``seen`` past residuals >= d say."""
    window = sorted([abs(v) for v in noise(1000 - seen)] + [50.0] * seen)
    assert neg_log10_tail(40.0, window, 0.1, 1e-3) == pytest.approx(most)
    assert neg_log10_tail(60.0, window, 0.1, 1e-3) > 3.0  # beyond all of them: fitted


@pytest.mark.parametrize("period", [97, 150, 288])
def test_a_recurring_spike_alarms_once_then_is_ordinary(period: int) -> None:
    """A cron-like spike (same size, jittered phase) on integer noise: an event once."""
    rng = random.Random(period)
    series = [float(round(v)) for v in noise(4000)]
    for i in range(200, 4000, period):
        series[i + rng.randint(-5, 5)] = 30.0
    s = scores(series, change_view="0", sustain="0")
    assert [i for i in onsets(s) if i >= 150] == [i for i in onsets(s) if 150 <= i <= 205]
    assert len([i for i in onsets(s) if i >= 150]) == 1


def test_the_season_view_waits_for_its_own_warm_up() -> None:
    """Until it holds a warm-up of residuals it is not read (nor counted as a look)."""
    series = noise(400, seed=5)
    with_season = scores(series, season_length="200")
    without = scores(series, season_length="0")
    assert with_season[:228] == without[:228]
    assert with_season[260:] != without[260:]


def test_bonferroni_counts_the_features_read() -> None:
    """Two features read: p doubled; one of them missing: as a one-feature detector."""
    a, b = FeatureSpec("a"), FeatureSpec("b")
    one, two = TailDetector(TailConfig(), (a,)), TailDetector(TailConfig(), (a, b))
    for v, w in zip(noise(300, seed=1), noise(300, seed=2), strict=True):
        one.learn_one({"a": v})
        two.learn_one({"a": v, "b": w})
    spike = {"a": 9.0, "b": 0.0}
    assert two.score_one({"a": 9.0}) == pytest.approx(one.score_one({"a": 9.0}))
    assert two.score_one(spike) < one.score_one({"a": 9.0})


@pytest.mark.parametrize(("shift", "by"), [(2.5, 1006), (3.0, 1005)])
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_small_held_shift_alarms_through_the_sustained_view(
    shift: float, by: int, seed: int
) -> None:
    """2.5-3 sd held for 12 points: the 6-point mean is improbable within a few points."""
    series = noise(1200, seed=seed)
    for i in range(1000, 1012):
        series[i] += shift
    with_mean = [i for i in onsets(scores(series)) if i >= 300]
    assert len(with_mean) == 1 and 1000 <= with_mean[0] <= by
    without = [i for i in onsets(scores(series, sustain="0")) if i >= 300]
    assert not without or without[0] > with_mean[0]
