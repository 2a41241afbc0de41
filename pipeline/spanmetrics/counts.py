"""Span counts and duration histograms per (service, operation, kind, status): the hot path.

What the OpenTelemetry Collector's spanmetrics connector (default configuration)
counts, for every span the worker reads, before tail sampling:

* calls: spans per label set;
* duration: an explicit-bucket histogram of the span's duration in milliseconds,
  with the connector's default bounds :data:`BUCKETS_MS`.

The labels' cardinality is capped like the windows': the service is the series
service and the operation the normalized, per-service-bounded one
(``SPANSTREAM_MAX_SERVICES``, ``SPANSTREAM_MAX_OPERATIONS_PER_SERVICE``, both
``__overflow__`` past the bound); kind and status are the OTLP numbers, and any
number outside the enum counts under one "unknown" index (label ``""``, as the
connector's ``SpanKindStr``/``StatusCodeStr`` give it).

The per-span loop runs once per record on the ingest thread and never calls
``prometheus_client``: :func:`spanmetrics_add` adds a record's spans to a plain dict
(natively, :func:`pipeline.native.spanmetrics_add`; :func:`spanmetrics_add_of` is
the definition), and :class:`SpanMetrics` keeps the cumulative counts a scrape reads.

>>> from pipeline.model import SpanHead
>>> def head(ms, kind=2, status=0):
...     return SpanHead("t", "s", "", 0, ms * 1_000_000, "api", "GET /", False, 0,
...                     b"", 0, 0, None, None, kind, status)
>>> acc = {}
>>> spanmetrics_add_of([head(3), head(3), head(20_000, status=2), head(1, kind=99)], acc,
...                    BOUNDS_NS)
>>> entry = acc[("api", "GET /", 2, 0)]
>>> entry[0], entry[1], entry[2 + 1]  # calls, duration sum (ns), the le=4 bucket
(2, 6000000, 2)
>>> acc[("api", "GET /", 2, 2)][-1], acc[("api", "GET /", UNKNOWN_KIND, 0)][2]
(1, 1)
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Sequence
from typing import Final

from pipeline import native
from pipeline.model import SpanHead

#: The connector's default explicit bounds (``histogram.explicit.buckets``), in ms.
BUCKETS_MS: Final = (2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000)
#: The same bounds in nanoseconds, what the per-span loop compares durations with.
BOUNDS_NS: Final = tuple(ms * 1_000_000 for ms in BUCKETS_MS)
#: Label values of ``span_kind`` by OTLP number, then the one for any other number.
SPAN_KINDS: Final = (
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
    "",
)
#: Label values of ``status_code`` by OTLP number, then the one for any other number.
STATUS_CODES: Final = ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR", "")
UNKNOWN_KIND: Final = len(SPAN_KINDS) - 1
UNKNOWN_STATUS: Final = len(STATUS_CODES) - 1

#: (series service, operation, kind index, status index)
Key = tuple[str, str, int, int]
#: [calls, duration sum in ns, count per bucket: len(BOUNDS_NS) bounds then +Inf]
Entry = list[int]


def spanmetrics_add_of(
    spans: Sequence[SpanHead], acc: dict[Key, Entry], bounds_ns: Sequence[int]
) -> None:
    """Add each span to ``acc[key]``: one call, one duration in its (non-cumulative) bucket.

    A bucket holds the durations ``<=`` its bound and above the previous one (Prometheus'
    ``le``); the last holds the rest (+Inf).
    """
    width = len(bounds_ns) + 3
    for span in spans:
        kind, status = span.kind, span.status
        key = (
            span.service_name,
            span.operation,
            kind if 0 <= kind < UNKNOWN_KIND else UNKNOWN_KIND,
            status if 0 <= status < UNKNOWN_STATUS else UNKNOWN_STATUS,
        )
        entry = acc.get(key)
        if entry is None:
            entry = acc[key] = [0] * width
        duration = span.duration_ns
        entry[0] += 1
        entry[1] += duration
        entry[2 + bisect_left(bounds_ns, duration)] += 1


spanmetrics_add = native.spanmetrics_add


class SpanMetrics:
    """Cumulative counts since the worker started, added to by the ingest thread.

    A record's spans are added under a lock, so a scrape (another thread) reads a
    consistent copy (:meth:`snapshot`): calls always equal the +Inf bucket.
    """

    def __init__(self, bounds_ns: Sequence[int] = BOUNDS_NS) -> None:
        self.bounds_ns = tuple(bounds_ns)
        self._acc: dict[Key, Entry] = {}
        self._lock = threading.Lock()

    def add(self, spans: Sequence[SpanHead]) -> None:
        """Count one record's spans."""
        if spans:
            with self._lock:
                spanmetrics_add(spans, self._acc, self.bounds_ns)

    def snapshot(self) -> list[tuple[Key, Entry]]:
        """Every label set's counts, copied, in a stable order."""
        with self._lock:
            items = [(key, list(entry)) for key, entry in self._acc.items()]
        items.sort(key=lambda item: item[0])
        return items

    def __len__(self) -> int:
        return len(self._acc)
