"""Multivariate detector: River's Half-Space Trees over online min-max scaled features.

Half-Space Trees' raw score (mass in sparse regions) has no fixed meaning:
its typical level depends on the data. The raw score is therefore turned into
a z-score against its own running mean and mean absolute deviation, learnt
only from windows that were not anomalous, and mapped to ``[0, 1]`` like the
other detectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.detect.base import WINDOW_SPECS, Detector, Features, FeatureSpec, read, z_to_score


@dataclass(frozen=True)
class HstConfig:
    """Parameters of the Half-Space Trees detector (``seed`` makes the trees reproducible)."""

    n_trees: int = 10
    height: int = 6
    window_size: int = 120
    threshold: float = 4.0
    calibration_alpha: float = 0.02
    warmup: int = 60
    seed: int = 42


class HstDetector(Detector):
    """Half-Space Trees on encoded features (sqrt counts, log latencies).

    Missing or meaningless features (latency of an empty window) are imputed
    with the last seen value so the trees always see the same dimensions.

    >>> from pipeline.detect.base import VALUE_SPECS
    >>> d = HstDetector(HstConfig(window_size=20, warmup=10), specs=VALUE_SPECS)
    >>> for i in range(200):
    ...     d.learn_one({"value": 10.0 + (i % 3)})
    >>> d.score_one({"value": 500.0}) > d.score_one({"value": 11.0})
    True
    """

    name = "hst"

    def __init__(
        self, config: HstConfig | None = None, specs: tuple[FeatureSpec, ...] = WINDOW_SPECS
    ) -> None:
        from river import anomaly, preprocessing

        self.config = config or HstConfig()
        self.specs = specs
        self.scaler = preprocessing.MinMaxScaler()
        self.trees = anomaly.HalfSpaceTrees(
            n_trees=self.config.n_trees,
            height=self.config.height,
            window_size=self.config.window_size,
            seed=self.config.seed,
        )
        self.last: dict[str, float] = {s.name: 0.0 for s in specs}
        self.n = 0
        self.mean = 0.0
        self.mad = 0.0

    def _vector(self, x: Features) -> dict[str, float]:
        out = {}
        for spec in self.specs:
            v = read(spec, x)
            out[spec.name] = self.last[spec.name] if v is None else v
        return out

    def _raw(self, x: Features) -> tuple[dict[str, float], float]:
        vec = self._vector(x)
        scaled: dict[str, Any] = self.scaler.transform_one(vec)
        # Values beyond what was seen are clipped into the trees' padded range.
        scaled = {k: min(max(v, -0.1), 1.1) for k, v in scaled.items()}
        return vec, float(self.trees.score_one(scaled))

    def _z(self, raw: float) -> float:
        return (raw - self.mean) / max(1.25 * self.mad, 1e-3)

    def score_one(self, x: Features) -> float:
        """Calibrated Half-Space Trees score; 0 during warm-up."""
        if self.n < self.config.warmup + self.config.window_size:
            return 0.0
        return z_to_score(self._z(self._raw(x)[1]), self.config.threshold)

    def learn_one(self, x: Features) -> None:
        """Update the scaler, the trees, and the score calibration (skipping anomalies)."""
        vec, raw = self._raw(x)
        self.n += 1
        if self.n > self.config.window_size:
            warm = self.n <= self.config.window_size + self.config.warmup
            if warm or self._z(raw) < self.config.threshold:
                a = max(self.config.calibration_alpha, 1.0 / (self.n - self.config.window_size))
                self.mad += a * (abs(raw - self.mean) - self.mad)
                self.mean += a * (raw - self.mean)
        self.scaler.learn_one(vec)
        self.trees.learn_one(self.scaler.transform_one(vec))
        self.last = vec
