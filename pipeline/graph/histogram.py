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
from typing import Final

from pipeline.windows.latency_sketch import LatencySketch

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
