"""Residual detectors: expected value per feature, robust scale, direction-aware z-score.

Two expectation models share the machinery: an exponentially weighted level
(:class:`RobustDetector`) and River's Holt-Winters forecaster with a daily
season (:class:`SeasonalDetector`). Learning is winsorised (a value further
than ``clip`` scales from the expectation is learnt as if it were at the clip
edge) so that an incident does not drag the baseline with it; after
``rebaseline_after`` consecutive anomalous windows the expectation jumps to
the recent median instead, so a permanent level shift after a deploy stops
alerting and becomes the new normal.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pipeline.checked import count, header, number, numbers, per_name, record
from pipeline.detect.base import (
    WINDOW_SPECS,
    Detector,
    Deviation,
    Features,
    FeatureSpec,
    read,
    z_to_score,
)
from pipeline.detect.expectation import MAX_VALUE, Ewma, HoltWinters


@dataclass(frozen=True)
class RobustConfig:
    """Parameters of the EWMA robust z-score detector.

    ``threshold`` is the deviation (in robust standard deviations) that scores
    0.5; ``min_rel_change`` and ``min_ratio_change`` stop alerts on changes too
    small to matter (10 % latency, 2 points of error ratio) on very quiet series.

    ``cusum_k`` and ``cusum_h`` are Page's reference value and decision
    interval, in robust standard deviations: every window adds ``z - cusum_k``
    to a sum floored at 0, which alarms at ``cusum_h`` (score 0.5, like a point
    z at ``threshold``) and then restarts. ``k = 1.25`` is half of a 2.5-scale
    shift, the kind the point test misses; with ``h = 4`` Gaussian noise alarms
    once in ~1.3e5 windows (90 days) per feature and a 2.5-scale shift within
    ~4 windows. ``cusum_h = 0`` switches the CUSUM off. ``alarm_clip`` is how far
    (in scales) an alarmed window moves the baseline: 0, so an incident that
    ends leaves no phantom shift behind for the CUSUM to sum; a change that
    lasts is adopted by the rebaseline.
    """

    alpha: float = 0.05
    scale_alpha: float = 0.02
    threshold: float = 4.25
    clip: float = 3.0
    warmup: int = 30
    rebaseline_after: int = 15
    min_rel_change: float = 0.10
    min_ratio_change: float = 0.02
    cusum_k: float = 1.25
    cusum_h: float = 4.0
    alarm_clip: float = 0.0


def cusum_step(up: float, down: float, z: float, k: float) -> tuple[float, float]:
    """One step of Page's upper and lower CUSUMs on a residual ``z`` (in scales).

    ``S = max(0, S + z - k)`` accumulates each residual's excess over the
    reference value ``k``: noise (z ~ N(0, 1)) keeps S near 0, a sustained
    shift of ``d > k`` scales grows it by ``d - k`` per window.

    >>> cusum_step(0.0, 0.0, 3.0, 1.25)
    (1.75, 0.0)
    >>> cusum_step(1.75, 0.0, -3.0, 1.25)
    (0.0, 1.75)
    """
    return max(0.0, up + z - k), max(0.0, down - z - k)


@dataclass(frozen=True)
class SeasonalConfig(RobustConfig):
    """Parameters of the Holt-Winters detector; ``season_length`` is in windows (a day of 60 s).

    The CUSUM is off and alarms are learnt winsorised at ``clip``, as evaluated
    (see README.md); ``cusum_h=4, alarm_clip=0`` switches both on.
    """

    season_length: int = 1440
    cusum_h: float = 0.0
    alarm_clip: float = 3.0
    hw_alpha: float = 0.1
    hw_beta: float = 0.001
    hw_gamma: float = 0.2


@dataclass
class _FeatureState:
    model: Ewma | HoltWinters
    mad: float = 0.0
    n: int = 0
    streak: int = 0
    recent: deque[float] = field(default_factory=deque)
    cusum_up: float = 0.0
    cusum_down: float = 0.0
    sign: float = 1.0


def _feature_state(st: _FeatureState) -> dict[str, Any]:
    return {
        "model": st.model.to_state(),
        "mad": st.mad,
        "n": st.n,
        "streak": st.streak,
        "recent": list(st.recent),
        "cusum_up": st.cusum_up,
        "cusum_down": st.cusum_down,
        "sign": st.sign,
    }


class ResidualDetector(Detector):
    """Shared residual logic; subclasses choose the expectation model."""

    def __init__(self, config: RobustConfig, specs: tuple[FeatureSpec, ...]) -> None:
        self.config = config
        self.specs = specs
        self.states = {s.name: self._new_state() for s in specs}

    def _new_model(self) -> Ewma | HoltWinters:
        return Ewma(self.config.alpha)

    #: Format version of :meth:`to_state`.
    STATE_VERSION = 1

    def to_state(self) -> dict[str, Any]:
        """Per feature: the expectation model, the noise scale, the CUSUMs and recent values."""
        return {
            "kind": self.name,
            "v": self.STATE_VERSION,
            "features": {name: _feature_state(st) for name, st in self.states.items()},
        }

    def load_state(self, state: object) -> None:
        """Exactly this detector's features; ``recent`` no longer than the rebaseline streak."""
        data = header(state, self.name, self.STATE_VERSION, ["features"])
        names = [s.name for s in self.specs]
        self.states = per_name(data["features"], "features", names, self._load_feature)

    def _load_feature(self, value: object, where: str) -> _FeatureState:
        keys = ["model", "mad", "n", "streak", "recent", "cusum_up", "cusum_down", "sign"]
        data = record(value, where, keys)
        st = self._new_state()
        st.model.load_state(data["model"], f"{where}.model")
        st.mad = number(data["mad"], f"{where}.mad", 0.0, MAX_VALUE)
        st.n = count(data["n"], f"{where}.n")
        st.streak = count(data["streak"], f"{where}.streak")
        limit = self.config.rebaseline_after
        st.recent.extend(numbers(data["recent"], f"{where}.recent", limit, -MAX_VALUE, MAX_VALUE))
        st.cusum_up = number(data["cusum_up"], f"{where}.cusum_up", 0.0, MAX_VALUE)
        st.cusum_down = number(data["cusum_down"], f"{where}.cusum_down", 0.0, MAX_VALUE)
        st.sign = number(data["sign"], f"{where}.sign", -1.0, 1.0)
        return st

    def _new_state(self) -> _FeatureState:
        return _FeatureState(self._new_model(), recent=deque(maxlen=self.config.rebaseline_after))

    @staticmethod
    def _weight(spec: FeatureSpec, x: Features) -> float:
        """sqrt(request count) for percentiles, whose noise shrinks like 1/sqrt(n)."""
        if spec.transform == "log" and spec.min_requests:
            return math.sqrt(max(x.get("requests", 1.0), 1.0))
        return 1.0

    def _scale(self, spec: FeatureSpec, st: _FeatureState, x: Features) -> float:
        """Robust standard deviation, floored so that irrelevant changes never alert."""
        cfg = self.config
        # Mean absolute deviation -> sd for Gaussian noise; ``mad`` is per unit weight.
        spread = 1.25 * spec.skew * st.mad / self._weight(spec, x)
        if spec.transform == "log":
            floor = math.log1p(cfg.min_rel_change) / cfg.threshold
        elif spec.transform == "sqrt":
            floor = 0.5  # Poisson noise in sqrt space
        else:
            floor = 1e-3 * abs(st.model.expected()) + 1e-9
        return max(spread, floor)

    def _signed_z(self, spec: FeatureSpec, st: _FeatureState, v: float, x: Features) -> float:
        expected = st.model.expected()
        if spec.transform != "ratio":
            return (v - expected) / self._scale(spec, st, x)
        if abs(v - expected) < self.config.min_ratio_change:
            return 0.0
        # Error counts are binomial with tiny p: compare counts on Anscombe's
        # square-root scale, where a 1-in-3 error window is not a 30-sigma event.
        n = max(x.get("requests", 1.0), 1.0)
        p = min(max(expected, 0.0), 1.0)
        return 2.0 * (math.sqrt(v * n + 0.375) - math.sqrt(p * n + 0.375))

    def _cusum(self, spec: FeatureSpec, st: _FeatureState, z: float) -> tuple[float, float]:
        """The feature's CUSUMs after a window with residual ``z`` (both 0 when off)."""
        if self.config.cusum_h <= 0 or not spec.cusum:
            return 0.0, 0.0
        return cusum_step(st.cusum_up, st.cusum_down, z, self.config.cusum_k)

    def _cusum_z(self, spec: FeatureSpec, up: float, down: float) -> float:
        """The CUSUM in the alerting direction as an equivalent z: ``threshold`` at ``h``.

        So a CUSUM at its decision interval scores 0.5, like a point deviation at
        the threshold, and at twice the interval 0.8 (:func:`z_to_score`).
        """
        if self.config.cusum_h <= 0:
            return 0.0
        drift = max(spec.directed(up), spec.directed(-down))
        return self.config.threshold * drift / self.config.cusum_h

    def _directed(self, spec: FeatureSpec, z: float) -> float:
        """The larger of the point deviation and the CUSUM, in the alerting direction."""
        up, down = self._cusum(spec, self.states[spec.name], z)
        return max(spec.directed(z), self._cusum_z(spec, up, down))

    def _z(self, spec: FeatureSpec, x: Features) -> tuple[float, float] | None:
        """Signed z of ``x`` for one feature and its expected value, once warmed up."""
        v = read(spec, x)
        st = self.states[spec.name]
        if v is None or st.n < self.config.warmup or not st.model.ready():
            return None
        return self._signed_z(spec, st, v, x), st.model.expected()

    def score_one(self, x: Features) -> float:
        """Score of the most deviating feature in its alerting direction."""
        zs = (self._z(s, x) for s in self.specs)
        worst = max(
            (self._directed(s, z[0]) for s, z in zip(self.specs, zs, strict=True) if z),
            default=0.0,
        )
        return z_to_score(worst, self.config.threshold)

    def explain_one(self, x: Features) -> tuple[Deviation, ...]:
        """Features beyond the threshold in their direction, with expected values."""
        out = []
        for spec in self.specs:
            z = self._z(spec, x)
            if z and self._directed(spec, z[0]) >= self.config.threshold:
                out.append(Deviation(spec.name, float(x[spec.name]), spec.decode(z[1])))
        return tuple(out)

    def learn_one(self, x: Features) -> None:
        """Winsorised update per feature, or a jump to the recent median after a long streak."""
        for spec in self.specs:
            v = read(spec, x)
            st = self.states[spec.name]
            if v is None:
                if isinstance(st.model, HoltWinters):
                    # Holt-Winters needs one value per window to keep its season aligned.
                    st.model.update(st.model.expected())
                continue
            self._learn_feature(spec, st, v, x)

    def _learn_feature(self, spec: FeatureSpec, st: _FeatureState, v: float, x: Features) -> None:
        cfg = self.config
        st.n += 1
        st.recent.append(v)
        w = self._weight(spec, x)
        if st.n <= cfg.warmup or not st.model.ready():
            resid = v - st.model.expected() if st.model.ready() else 0.0
            st.mad += max(cfg.scale_alpha, 1.0 / st.n) * (abs(resid) * w - st.mad)
            st.model.update(v)
            return
        resid = v - st.model.expected()
        z = self._signed_z(spec, st, v, x)
        up, down = self._cusum(spec, st, z)
        spike = abs(z) >= cfg.threshold
        alarm = spike or (cfg.cusum_h > 0 and max(up, down) >= cfg.cusum_h)
        if alarm:
            st.sign = math.copysign(1.0, z if spike else up - down)
        # Out of control: an alarm, or the CUSUM in the alarm's direction still above
        # zero since (Page's estimate of when a change began is the CUSUM's last zero).
        holding = st.streak > 0 and (up if st.sign > 0 else down) > 0
        st.streak = st.streak + 1 if alarm or holding else 0
        # Restart the CUSUMs after any alarm, as Page's scheme does.
        st.cusum_up, st.cusum_down = (0.0, 0.0) if alarm else (up, down)
        if st.streak >= cfg.rebaseline_after:
            self._rebaseline(st, w)
            return
        clip = cfg.alarm_clip if alarm else cfg.clip
        clipped = resid * min(1.0, clip / abs(z)) if z else resid
        if not alarm:
            # An incident must not teach the noise level, or a slow drift hides itself.
            st.mad += cfg.scale_alpha * (abs(clipped) * w - st.mad)
        st.model.update(st.model.expected() + clipped)

    @staticmethod
    def _rebaseline(st: _FeatureState, w: float) -> None:
        """Adopt the recent windows as the new normal: their median level and spread.

        The spread is re-estimated too: a scale that was too small would
        otherwise keep every window anomalous and never learn.
        """
        centre = statistics.median(st.recent)
        st.model.shift(centre - st.model.expected())
        spread = statistics.median(abs(v - centre) for v in st.recent)
        st.mad = max(st.mad, 0.8 * spread * w)  # median absolute dev -> mean absolute dev
        st.streak = 0
        st.cusum_up = st.cusum_down = 0.0


class RobustDetector(ResidualDetector):
    """Per-feature EWMA baseline with a robust (winsorised mean absolute deviation) z-score.

    >>> d = RobustDetector(RobustConfig(warmup=5))
    >>> for _ in range(20):
    ...     d.learn_one({"requests": 100, "error_ratio": 0.01, "p50_ms": 20,
    ...                  "p95_ms": 80, "p99_ms": 120})
    >>> d.score_one({"requests": 100, "error_ratio": 0.01, "p50_ms": 20,
    ...              "p95_ms": 80, "p99_ms": 900}) > 0.8
    True
    """

    name = "robust"

    def __init__(
        self, config: RobustConfig | None = None, specs: tuple[FeatureSpec, ...] = WINDOW_SPECS
    ) -> None:
        super().__init__(config or RobustConfig(), specs)


class SeasonalDetector(ResidualDetector):
    """Holt-Winters (daily season) forecast per feature; z = forecast error / robust scale.

    Scores 0 until one full season has been seen (Holt-Winters initialisation).
    """

    name = "seasonal"
    config: SeasonalConfig

    def __init__(
        self, config: SeasonalConfig | None = None, specs: tuple[FeatureSpec, ...] = WINDOW_SPECS
    ) -> None:
        super().__init__(config or SeasonalConfig(), specs)

    def _new_model(self) -> Ewma | HoltWinters:
        cfg = self.config
        return HoltWinters(cfg.hw_alpha, cfg.hw_beta, cfg.hw_gamma, cfg.season_length)
