"""The spanmetrics counts as Prometheus families, named as the Collector exports them.

The spanmetrics connector (default namespace ``traces.span.metrics``, unit ``ms``)
makes the OTLP metrics ``traces.span.metrics.calls`` and
``traces.span.metrics.duration``; the Collector's Prometheus exporters turn them into
the names below, with the dots of the label names as underscores. A scrape of a
worker gives exactly those, so existing spanmetrics dashboards, queries and rules
read spanstream's counts unchanged:

* ``traces_span_metrics_calls_total`` (counter)
* ``traces_span_metrics_duration_milliseconds_bucket`` / ``_sum`` / ``_count`` (histogram)

with labels ``service_name``, ``span_name``, ``span_kind``, ``status_code``. Bucket
bounds are written as Go writes them (``le="2"``, ``le="1400"``, ``le="+Inf"``).

>>> from pipeline.spanmetrics.counts import SpanMetrics
>>> families = list(SpanMetricsCollector(SpanMetrics()).collect())
>>> [f.name for f in families], families[0].type, families[1].type
(['traces_span_metrics_calls', 'traces_span_metrics_duration_milliseconds'], 'counter', 'histogram')
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.spanmetrics.counts import SPAN_KINDS, STATUS_CODES, Entry, Key, SpanMetrics

#: The family names (the exposition adds ``_total`` / ``_bucket`` / ``_sum`` / ``_count``).
CALLS: Final = "traces_span_metrics_calls"
DURATION: Final = "traces_span_metrics_duration_milliseconds"
LABELS: Final = ("service_name", "span_name", "span_kind", "status_code")
NS_PER_MS: Final = 1_000_000


def go_float(value: float) -> str:
    """A bound as Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` writes it.

    >>> go_float(2), go_float(1400), go_float(0.5), go_float(float("inf"))
    ('2', '1400', '0.5', '+Inf')
    """
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)).removesuffix(".0")


def label_values(key: Key) -> list[str]:
    """``[service_name, span_name, span_kind, status_code]`` of a count's key.

    >>> label_values(("api", "GET /", 2, 3))
    ['api', 'GET /', 'SPAN_KIND_SERVER', '']
    """
    service, operation, kind, status = key
    return [service, operation, SPAN_KINDS[kind], STATUS_CODES[status]]


def buckets(entry: Entry, les: Sequence[str]) -> list[tuple[str, float]]:
    """The cumulative ``(le, count)`` pairs of one entry; the last (``+Inf``) is the calls.

    >>> buckets([3, 0, 1, 0, 2], ["2", "4", "+Inf"])
    [('2', 1), ('4', 1), ('+Inf', 3)]
    """
    out: list[tuple[str, float]] = []
    total = 0
    for le, count in zip(les, entry[2:], strict=True):
        total += count
        out.append((le, total))
    return out


class SpanMetricsCollector(Collector):
    """A ``prometheus_client`` collector that reads :class:`SpanMetrics` at each scrape."""

    def __init__(self, counts: SpanMetrics) -> None:
        self.counts = counts
        #: The ``le`` label of each bucket, written once.
        self.les = [*(go_float(b / NS_PER_MS) for b in counts.bounds_ns), "+Inf"]

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(CALLS, "Spans counted before sampling", labels=LABELS)
        duration = HistogramMetricFamily(DURATION, "Span durations before sampling", labels=LABELS)
        for key, entry in self.counts.snapshot():
            labels = label_values(key)
            calls.add_metric(labels, entry[0])
            duration.add_metric(labels, buckets(entry, self.les), entry[1] / NS_PER_MS)
        yield calls
        yield duration
