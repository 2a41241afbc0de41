"""The worker's window detector: ``robust``'s residual machinery, ready after two windows.

``robust`` learns each feature's noise from its own history and so waits 30
windows before scoring anything. :class:`RedDetector` starts from what is known
about RED features before any history, and lets the history take over as it
grows:

* **Priors instead of a warm-up.** A request count's noise is at least Poisson
  (sd 0.5 on Anscombe's square-root scale) plus ``traffic_rel_sd`` of relative
  window-to-window variation; a latency percentile's noise in log space is
  ``latency_sd_per_sqrt / sqrt(requests)`` (a median of ``n`` lognormal
  requests of log-spread ``s`` has sd ``1.25 s / sqrt(n)``; the prior takes
  ``s = 1``), times 1.68 for p95 and 2.98 for p99 (``QUANTILE_NOISE``); an error
  ratio is judged as a binomial count and needs no learnt scale at all. The
  learnt scale (``robust``'s winsorised mean absolute deviation) is blended with
  the prior as if the prior were ``prior_windows`` windows of history; a learnt
  scale *larger* than the prior is used as is (a noisy series is noisy from its
  first windows). The expected value, a running mean of few windows, is itself
  uncertain: the scale is widened by ``sqrt(1 + 1/n)``. Scores start after
  ``warmup`` (2) windows.
* **Directions.** Traffic both ways; latency upwards, and p50 also downwards
  once it falls to at most ``1 - min_drop`` of its expected value while the
  window's traffic is ``drop_traffic_z`` scales off (a halved p50 with a traffic
  change is how a request that fails fast shows when spans carry no status; a
  drop alone is a recovery); error ratios upwards.
* **Minimum volume.** The latency prior shrinks with the square root of the
  request count, so the smallest p50 change that alerts grows as traffic thins:
  ``exp(threshold * latency_sd_per_sqrt / sqrt(n))`` during the first windows
  (n = 5: x10.8, n = 10: x5.4, n = 100: x1.7). A latency drop never alerts
  below ``min_drop_requests`` requests. The feature specs'
  ``min_requests`` (p95 from 20, p99 from 100) still apply.

Everything else (EWMA level, CUSUM, rebaseline, ``alarm_clip``) is
``robust``'s, with its defaults; see ``pipeline/detect/README.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.detect.base import WINDOW_SPECS, Features, FeatureSpec, read
from pipeline.detect.residual import ResidualDetector, RobustConfig, _FeatureState


@dataclass(frozen=True)
class RedConfig(RobustConfig):
    """``robust``'s parameters plus the priors that replace its 30-window warm-up."""

    warmup: int = 2
    prior_windows: float = 10.0
    traffic_rel_sd: float = 0.15
    latency_sd_per_sqrt: float = 1.25
    min_drop: float = 0.5
    min_drop_requests: int = 20
    min_latency_change_ms: float = 1.0
    drop_traffic_z: float = 3.0

    def __post_init__(self) -> None:
        checks = {
            "warmup": self.warmup >= 1,
            "prior_windows": self.prior_windows >= 0,
            "traffic_rel_sd": self.traffic_rel_sd >= 0,
            "latency_sd_per_sqrt": self.latency_sd_per_sqrt > 0,
            "min_drop": 0 < self.min_drop < 1,
            "min_latency_change_ms": self.min_latency_change_ms >= 0,
        }
        for name, ok in checks.items():
            if not ok or not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"parameter {name}={getattr(self, name)!r} is out of range")


QUANTILE_NOISE = {"p50_ms": 1.0, "p95_ms": 1.68, "p99_ms": 2.98}
"""A sample quantile's sd relative to the median's, for normal noise in log space:
``sqrt(q (1 - q)) / phi(z_q)`` over the median's ``sqrt(pi / 2)``."""

RED_SPECS: tuple[FeatureSpec, ...] = tuple(
    FeatureSpec(s.name, s.transform, "both", s.min_requests, s.skew, s.cusum)
    if s.name == "p50_ms"
    else s
    for s in WINDOW_SPECS
)
"""The RED features; p50 alerts both ways (a drop only past ``min_drop``)."""


class RedDetector(ResidualDetector):
    """``robust`` with priors for its noise scales, so it scores from the third window.

    >>> d = RedDetector()
    >>> x = {"requests": 300.0, "error_ratio": 0.0, "p50_ms": 20.0, "p95_ms": 60.0,
    ...      "p99_ms": 90.0}
    >>> d.learn_one(x); d.learn_one(x)
    >>> d.score_one(x), d.score_one({**x, "p50_ms": 200.0}) > 0.8
    (0.0, True)
    """

    name = "red"
    config: RedConfig

    def __init__(
        self, config: RedConfig | None = None, specs: tuple[FeatureSpec, ...] = RED_SPECS
    ) -> None:
        super().__init__(config or RedConfig(), specs)

    def _prior_sd(self, spec: FeatureSpec, st: _FeatureState, x: Features) -> float:
        """The noise expected before any history (see the module docstring)."""
        cfg = self.config
        if spec.transform == "sqrt":
            return math.hypot(0.5, st.model.expected() * cfg.traffic_rel_sd / 2.0)
        if spec.transform == "log" and spec.min_requests:
            factor = QUANTILE_NOISE.get(spec.name, 1.0)
            return factor * cfg.latency_sd_per_sqrt / self._weight(spec, x)
        return 0.0

    def _scale(self, spec: FeatureSpec, st: _FeatureState, x: Features) -> float:
        """``robust``'s scale blended with the prior, widened for an uncertain level."""
        learnt = super()._scale(spec, st, x)
        prior = self._prior_sd(spec, st, x)
        n = max(st.n - 1, 0)  # residuals behind the learnt scale (the first has none)
        if prior <= learnt:
            sd = learnt
        else:
            k = self.config.prior_windows
            sd = math.sqrt((n * learnt**2 + k * prior**2) / (n + k))
        return sd * math.sqrt(1.0 + 1.0 / max(st.n, 1))

    def _z(self, spec: FeatureSpec, x: Features) -> tuple[float, float] | None:
        """``robust``'s z; a latency change counts only when it is material.

        Under ``min_latency_change_ms`` it never does (a sub-millisecond p99 that
        quadruples is no incident); a drop only from ``min_drop_requests``
        requests and to at most ``1 - min_drop`` of the expected value.
        """
        found = super()._z(spec, x)
        if found is None or spec.transform != "log" or found[0] == 0:
            return found
        z, expected = found
        v = read(spec, x)
        if (
            v is None
            or abs(math.expm1(v) - math.expm1(expected)) < self.config.min_latency_change_ms
        ):
            return 0.0, expected
        if z > 0:
            return found
        cfg = self.config
        material = (
            x.get("requests", 0.0) >= cfg.min_drop_requests
            and v - expected <= math.log(1.0 - cfg.min_drop)
            and self._traffic_z(x) >= cfg.drop_traffic_z
        )
        return (z if material else 0.0), expected

    def _traffic_z(self, x: Features) -> float:
        """How far the window's request count is from expected, either way (0 if unknown)."""
        spec = next((s for s in self.specs if s.name == "requests"), None)
        found = None if spec is None else super()._z(spec, x)
        return abs(found[0]) if found else 0.0

    def _cusum_z(self, spec: FeatureSpec, up: float, down: float) -> float:
        """Latency drifts count upwards only; a drop must be a material step (``_z``)."""
        if spec.transform == "log":
            down = 0.0
        return super()._cusum_z(spec, up, down)
