"""Latency sketches as fixed-bucket histograms: the servicegraph connector's buckets.

The Collector's servicegraph connector exports its latency histograms with these
default bounds (``latency_histogram_buckets``), in seconds; the service graph table
stores the same buckets, so a dashboard's ``histogram_quantile`` and a query over the
table agree. A sketch bucket is counted at its representative value (within the
sketch's 1% relative error), so a value within 1% of a bound may land one bucket off;
the sum is the sum of representative values (within 1%).

>>> from pipeline.windows.latency_sketch import LatencySketch
>>> s = LatencySketch()
>>> for ms in (1.0, 3.0, 3.0, 20_000.0):
...     s.add(ms)
>>> counts, total = buckets(s)
>>> counts[:3], counts[-1], round(total, 2)
([1, 2, 0], 1, 20.01)
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from itertools import repeat
from math import ceil, log
from operator import truediv
from typing import Final

from pipeline import native
from pipeline.windows.latency_sketch import MIN_VALUE_MS, LatencySketch

NS_PER_MS: Final = 1_000_000

#: Upper bounds in seconds (Prometheus ``le``); one more bucket counts what is above.
BOUNDS_S: Final = (
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
)  # fmt: skip
_BOUNDS_MS: Final = tuple(b * 1000.0 for b in BOUNDS_S)


def buckets(sketch: LatencySketch) -> tuple[list[int], float]:
    """Per-bucket counts (not cumulative, ``len(BOUNDS_S) + 1`` of them) and the sum in s."""
    counts = [0] * (len(BOUNDS_S) + 1)
    counts[0] = sketch.zeros
    total_ms = 0.0
    gamma = sketch.gamma
    for key, n in sketch.bins.items():
        value = min(max(2.0 * gamma**key / (gamma + 1.0), sketch.min), sketch.max)
        counts[bisect_left(_BOUNDS_MS, value)] += n
        total_ms += value * n
    return counts, total_ms / 1000.0


def sketch_of(values_ns: Sequence[int]) -> LatencySketch:
    """The default sketch of these durations in ms: equal to adding each ``max(v, 0) / 1e6``.

    One pass over a list instead of one :meth:`LatencySketch.add` call per value (the
    aggregator keeps a flush interval's durations and makes their sketch here).

    >>> sketch_of([0, 1_000_000, 2_500_000, -5]) == _added([0, 1_000_000, 2_500_000, -5])
    True
    """
    sketch = LatencySketch()
    if not values_ns:
        return sketch
    bins, zeros, low, high = native.sketch_counts(values_ns, 1.0 / log(sketch.gamma))
    if len(bins) > sketch.max_bins:
        return _added(values_ns)
    return LatencySketch.from_counts(bins, len(values_ns), zeros, low, high)


def sketch_counts_of(
    values_ns: Sequence[int], inv_log_gamma: float
) -> tuple[dict[int, int], int, float, float]:
    """The reference of ``pipeline.native.sketch_counts``: bins, zeros, min and max in ms.

    >>> sketch_counts_of([0, 1_000_000, 1_000_001, -5], 100.0)
    ({0: 1, 1: 1}, 2, 0.0, 1.000001)
    """
    ms = list(map(truediv, values_ns, repeat(NS_PER_MS)))
    if not ms:
        return {}, 0, 0.0, 0.0
    positive = list(filter(_ABOVE_MIN, ms))
    bins = dict(Counter(map(ceil, map(inv_log_gamma.__mul__, map(log, positive)))))
    low, high = min(ms), max(ms)  # negative durations count as 0
    return bins, len(ms) - len(positive), max(low, 0.0), max(high, 0.0)


#: ``v > MIN_VALUE_MS`` as a C call.
_ABOVE_MIN: Final = MIN_VALUE_MS.__lt__


def _added(values_ns: Sequence[int]) -> LatencySketch:
    sketch = LatencySketch()
    for v in values_ns:
        sketch.add(max(v, 0) / NS_PER_MS)
    return sketch
