"""A small log-bucket histogram with exponential forgetting, for online latency quantiles.

Values fall in buckets ``ceil(log_gamma(v))`` (relative error ``a``, as in
DDSketch). Unlike the mergeable window sketch in :mod:`pipeline.windows.latency_sketch`,
this one must *forget*: once the total weight reaches ``horizon``, every weight
is halved, so a latency regime older than a few horizons stops counting and a
deploy that changes an operation's latency moves its threshold within a few
thousand calls. Buckets are bounded by ``max_bins``; past it the lowest buckets
fold upward, which only blurs low quantiles (we read high ones).

>>> h = DecayingHistogram()
>>> for v in range(1, 101):
...     h.add(float(v))
>>> h.count, 97.0 < h.quantile(0.99) <= 100.0 * 1.03
(100.0, True)
>>> DecayingHistogram.from_dict(h.to_dict()).quantile(0.99) == h.quantile(0.99)
True
"""

from __future__ import annotations

import math
from typing import Any

_MIN_VALUE = 1.0


class DecayingHistogram:
    """Quantiles of positive values with relative accuracy and bounded memory."""

    __slots__ = ("_inv_log_gamma", "accuracy", "bins", "count", "gamma", "horizon", "max_bins")

    def __init__(
        self, accuracy: float = 0.02, horizon: float = 10_000.0, max_bins: int = 256
    ) -> None:
        if not 0.0 < accuracy < 1.0:
            raise ValueError(f"accuracy must be in (0, 1), got {accuracy}")
        if horizon < 2 or max_bins < 1:
            raise ValueError("horizon must be >= 2 and max_bins >= 1")
        self.accuracy = accuracy
        self.gamma = (1.0 + accuracy) / (1.0 - accuracy)
        self._inv_log_gamma = 1.0 / math.log(self.gamma)
        self.horizon = horizon
        self.max_bins = max_bins
        #: Bucket key -> weight; the native learning (``native.latency_observe``) adds here.
        self.bins: dict[int, float] = {}
        #: Current total weight: the number of values seen, less what was forgotten.
        self.count = 0.0

    def add(self, value: float) -> None:
        """Count one value; values below 1 (e.g. 0 ns) count in the lowest bucket."""
        key = math.ceil(math.log(max(value, _MIN_VALUE)) * self._inv_log_gamma)
        self.bins[key] = self.bins.get(key, 0.0) + 1.0
        self.count += 1.0
        if len(self.bins) > self.max_bins:
            self.fold()
        if self.count >= self.horizon:
            self.halve()

    def fold(self) -> None:
        """Fold the lowest buckets upward until ``max_bins`` remain (called when over)."""
        keys = sorted(self.bins)
        excess = len(keys) - self.max_bins
        folded = sum(self.bins.pop(k) for k in keys[:excess])
        self.bins[keys[excess]] += folded

    def halve(self) -> None:
        """Halve every weight, dropping buckets under 0.01 (called at ``horizon``)."""
        # Buckets that decay below a hundredth of a value would only cost memory.
        self.bins = {k: w / 2 for k, w in self.bins.items() if w / 2 >= 0.01}
        self.count = sum(self.bins.values())

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile ``q``; 0.0 when empty.

        The upper bound, not the midpoint, so a value is called "above p99" only
        when it is above the whole p99 bucket.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        target = q * self.count
        seen = 0.0
        for key in sorted(self.bins):
            seen += self.bins[key]
            if seen >= target:
                return float(self.gamma**key)
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (bucket keys as strings)."""
        return {
            "accuracy": self.accuracy,
            "horizon": self.horizon,
            "max_bins": self.max_bins,
            "bins": {str(k): w for k, w in sorted(self.bins.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecayingHistogram:
        """Rebuild a histogram from :meth:`to_dict` output."""
        h = cls(float(data["accuracy"]), float(data["horizon"]), int(data["max_bins"]))
        h.bins = {int(k): float(w) for k, w in data["bins"].items()}
        h.count = sum(h.bins.values())
        return h
