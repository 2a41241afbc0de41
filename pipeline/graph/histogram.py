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
from math import ceil, log
from typing import Final

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
    inv = 1.0 / log(sketch.gamma)
    ms = [v / NS_PER_MS if v > 0 else 0.0 for v in values_ns]
    positive = [v for v in ms if v > MIN_VALUE_MS]
    if not ms:
        return sketch
    bins = dict(Counter([ceil(log(v) * inv) for v in positive]))
    if len(bins) > sketch.max_bins:
        return _added(values_ns)
    return LatencySketch.from_counts(bins, len(ms), len(ms) - len(positive), min(ms), max(ms))


def _added(values_ns: Sequence[int]) -> LatencySketch:
    sketch = LatencySketch()
    for v in values_ns:
        sketch.add(max(v, 0) / NS_PER_MS)
    return sketch
