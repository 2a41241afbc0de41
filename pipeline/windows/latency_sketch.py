"""A mergeable latency sketch with relative-error quantiles (DDSketch-style).

A value ``v > 0`` falls in bucket ``i = ceil(log_gamma(v))`` with
``gamma = (1 + a) / (1 - a)``; the bucket answers with ``2 * gamma**i / (gamma + 1)``,
which is within relative error ``a`` of every value in ``(gamma**(i-1), gamma**i]``.
Values at or below ``MIN_VALUE_MS`` (sub-nanosecond) count as zero.

Bucket counts are bounded: past ``max_bins`` non-empty buckets, the lowest ones
fold into the lowest kept bucket, so only the low quantiles lose accuracy.
That fold keeps the sketch order-independent: adding values one by one, in
any order, or merging sketches of any split of them gives equal sketches.

>>> s = LatencySketch()
>>> for v in (1.0, 2.0, 3.0, 4.0, 100.0):
...     s.add(v)
>>> s.count, round(s.quantile(0.5), 1), s.quantile(1.0)
(5, 3.0, 100.0)
>>> LatencySketch.from_dict(s.to_dict()) == s
True
"""

from __future__ import annotations

import math
from itertools import pairwise
from math import ceil, log
from typing import Any

from pipeline.checked import MAX_COUNT, StateError, count, number, record

DEFAULT_RELATIVE_ACCURACY = 0.01
DEFAULT_MAX_BINS = 2048
#: Most buckets a sketch read from Kafka may declare (the pipeline writes the default).
MAX_BINS_LIMIT = 4 * DEFAULT_MAX_BINS
#: Values at or below this (in milliseconds: one picosecond) land in the zero bucket.
MIN_VALUE_MS = 1e-9


class LatencySketch:
    """Quantile sketch over non-negative values (milliseconds), relative accuracy ``a``."""

    __slots__ = (
        "_bins",
        "_inv_log_gamma",
        "count",
        "gamma",
        "max",
        "max_bins",
        "min",
        "relative_accuracy",
        "zeros",
    )

    def __init__(
        self,
        relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
        max_bins: int = DEFAULT_MAX_BINS,
    ) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy}")
        if max_bins < 1:
            raise ValueError(f"max_bins must be >= 1, got {max_bins}")
        #: The guaranteed relative error of :meth:`quantile` (above folded buckets).
        self.relative_accuracy = relative_accuracy
        self.gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._inv_log_gamma = 1.0 / math.log(self.gamma)
        self.max_bins = max_bins
        self._bins: dict[int, int] = {}
        self.count = 0
        self.zeros = 0
        self.min = math.inf
        self.max = -math.inf

    @property
    def bins(self) -> dict[int, int]:
        """The non-empty buckets: key ``ceil(log_gamma(v))`` -> count (do not modify)."""
        return self._bins

    @classmethod
    def from_counts(
        cls, bins: dict[int, int], count: int, zeros: int, low: float, high: float
    ) -> LatencySketch:
        """A default-accuracy sketch holding these counts (takes ``bins`` over).

        The native window aggregation (``pipeline.native.window_add``) keys its
        buckets as :meth:`add` does; this is how its counts become a sketch.
        """
        sketch = cls()
        sketch._bins = bins
        sketch.count = count
        sketch.zeros = zeros
        sketch.min = low
        sketch.max = high
        return sketch

    def add(self, value: float) -> None:
        """Count one value; negative values count as zero (clock skew, not latency)."""
        self.count += 1
        if value > MIN_VALUE_MS:
            if value > self.max:
                self.max = value
            if value < self.min:
                self.min = value
            bins = self._bins
            key = ceil(log(value) * self._inv_log_gamma)
            n = bins.get(key)
            if n is not None:
                bins[key] = n + 1
                return
            bins[key] = 1
            if len(bins) > self.max_bins:
                self._fold()
            return
        self.zeros += 1
        value = value if value > 0.0 else 0.0
        if value > self.max:
            self.max = value
        if value < self.min:
            self.min = value

    def merge(self, other: LatencySketch) -> None:
        """Add every value counted by ``other`` (same accuracy required)."""
        if other.gamma != self.gamma:
            raise ValueError("cannot merge sketches with different relative accuracy")
        if other.count == 0:
            return
        self.count += other.count
        self.zeros += other.zeros
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        bins = self._bins
        for key, n in other._bins.items():
            bins[key] = bins.get(key, 0) + n
        if len(bins) > self.max_bins:
            self._fold()

    def _fold(self) -> None:
        # Folding into the max_bins-th highest key is what makes the result
        # independent of insertion and merge order (that key is the same for
        # any subset that still overflows).
        keys = sorted(self._bins, reverse=True)
        floor_key = keys[self.max_bins - 1]
        folded = sum(self._bins.pop(k) for k in keys[self.max_bins :])
        self._bins[floor_key] += folded

    def quantile(self, q: float) -> float:
        """The value at rank ``q * (count - 1)`` (lower quantile); 0.0 when empty.

        Exact for ``q`` 0 and 1 (min and max), within ``relative_accuracy`` otherwise.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        if self.count == 0:
            return 0.0
        if q in (0.0, 1.0):
            # The extremes are tracked exactly; buckets would only approximate them.
            return self.min if q == 0.0 else self.max
        rank = q * (self.count - 1)
        if rank < self.zeros:
            return 0.0
        seen = self.zeros
        for key in sorted(self._bins):
            seen += self._bins[key]
            if seen > rank:
                value = 2.0 * self.gamma**key / (self.gamma + 1.0)
                return min(max(value, self.min), self.max)
        return self.max

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencySketch):
            return NotImplemented
        return (
            self.gamma == other.gamma
            and self.max_bins == other.max_bins
            and self.count == other.count
            and self.zeros == other.zeros
            and self._bins == other._bins
            and (self.count == 0 or (self.min, self.max) == (other.min, other.max))
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"LatencySketch(count={self.count}, bins={len(self._bins)})"

    def copy(self) -> LatencySketch:
        """An independent sketch with the same contents."""
        return LatencySketch.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-safe form; keys are sorted and delta-encoded so equal sketches
        serialize to equal bytes."""
        keys = sorted(self._bins)
        deltas = [b - a for a, b in pairwise(keys)]
        return {
            "a": self.relative_accuracy,
            "m": self.max_bins,
            "n": self.count,
            "z": self.zeros,
            "lo": None if self.count == 0 else self.min,
            "hi": None if self.count == 0 else self.max,
            "k": keys[:1] + deltas,
            "c": [self._bins[k] for k in keys],
        }

    @classmethod
    def from_dict(cls, data: object) -> LatencySketch:
        """Rebuild a sketch from :meth:`to_dict` output, checked (it comes from Kafka).

        Raises :class:`~pipeline.checked.StateError` unless every field has its type
        and range: bucket keys whose value ``gamma**key`` a float holds, at most
        ``max_bins`` buckets (at most :data:`MAX_BINS_LIMIT`), counts adding up.
        """
        d = record(data, "sketch", ["a", "m", "n", "z", "lo", "hi", "k", "c"])
        accuracy = number(d["a"], "sketch.a", 1e-6, 0.5)
        max_bins = _int(d["m"], "sketch.m", 1, MAX_BINS_LIMIT)
        sketch = cls(accuracy, max_bins)
        deltas, counts = d["k"], d["c"]
        if not isinstance(deltas, list) or not isinstance(counts, list):
            raise StateError("schema", "sketch.k and sketch.c must be lists")
        if len(deltas) != len(counts) or len(deltas) > max_bins:
            raise StateError("schema", f"sketch: {len(deltas)} buckets, at most {max_bins}")
        # gamma**key must stay a finite float: |key| * ln(gamma) well under ln(1.8e308).
        limit = int(600 / math.log(sketch.gamma))
        key = 0
        for i, (delta, n) in enumerate(zip(deltas, counts, strict=True)):
            step = _int(delta, "sketch.k", -limit, 2 * limit)
            key = step if i == 0 else key + step
            if not -limit <= key <= limit or (i and step <= 0):
                raise StateError("schema", "sketch.k: keys out of range or not increasing")
            sketch._bins[key] = count(n, "sketch.c", MAX_COUNT)
        sketch.count = count(d["n"], "sketch.n", MAX_COUNT)
        sketch.zeros = count(d["z"], "sketch.z", MAX_COUNT)
        if sketch.zeros + sum(sketch._bins.values()) != sketch.count:
            raise StateError("schema", "sketch: bucket counts and zeros do not add up to n")
        if sketch.count:
            sketch.min = number(d["lo"], "sketch.lo", 0.0)
            sketch.max = number(d["hi"], "sketch.hi", sketch.min)
        return sketch


def _int(value: object, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise StateError("schema", f"{where}: expected an int in [{lo}, {hi}]")
    return value
