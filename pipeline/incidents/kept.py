"""Attribute counts for an incident, read from the kept spans in ``otel_traces`` (the shell).

Why kept spans and not in-stream counters (``docs/incidents.md``): tail sampling
already keeps every error trace, every trace over its operation's p99, the
exemplars of operations flagged anomalous and a baseline share, i.e. the
abnormal spans and a sample of normal ones; reading them costs one bounded
query per incident change (a few a day), while counters would cost every span
on the ingest hot path an attribute lookup and every window a row per
attribute value.

A span is *abnormal* when it is an error or lasts more than :data:`SLOW_FACTOR`
times the median of its operation among the spans read. A failed query yields
nothing (logged): attributes are optional evidence and never fail a close.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping
from typing import Any

from pipeline.incidents.attributes import KEYS
from pipeline.sinks.clickhouse import TRACES_TABLE
from pipeline.store.base import Store

log = logging.getLogger(__name__)

SLOW_FACTOR = 2.0
#: Spans read per query at most.
LIMIT = 5000
_RESOURCE = ("k8s.pod.name", "host.name", "service.version")
_COLUMNS = ", ".join(
    f"ResourceAttributes['{k}']" if k in _RESOURCE else f"SpanAttributes['{k}']" for k in KEYS
)
SQL = (
    f"SELECT SpanName, Duration, StatusCode = 'Error', {_COLUMNS} FROM {TRACES_TABLE} "
    "WHERE ServiceName = {service:String} "
    "AND Timestamp >= fromUnixTimestamp64Nano({since:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({until:Int64}) "
    f"LIMIT {LIMIT}"
)


def classify(rows: list[tuple[Any, ...]]) -> list[tuple[Mapping[str, object], bool]]:
    """(attributes, abnormal) per row of :data:`SQL`.

    >>> rows = [("GET", 10, False, "p1"), ("GET", 11, False, "p2"), ("GET", 90, False, "p1"),
    ...         ("GET", 12, True, "p2")]
    >>> [(a["k8s.pod.name"], bad) for a, bad in classify([r + ("",) * 6 for r in rows])]
    [('p1', False), ('p2', False), ('p1', True), ('p2', True)]
    """
    by_op: dict[str, list[int]] = {}
    for row in rows:
        by_op.setdefault(str(row[0]), []).append(int(row[1]))
    medians = {op: statistics.median(d) for op, d in by_op.items()}
    out: list[tuple[Mapping[str, object], bool]] = []
    for row in rows:
        attrs = {k: v for k, v in zip(KEYS, row[3:], strict=True) if v not in ("", None)}
        slow = int(row[1]) > SLOW_FACTOR * medians[str(row[0])]
        out.append((attrs, bool(row[2]) or slow))
    return out


class KeptSpanAttributes:
    """The desk's attribute source over a store: ``(service, since, until) -> spans``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(
        self, service: str, since_ns: int, until_ns: int
    ) -> list[tuple[Mapping[str, object], bool]]:
        params = {"service": service, "since": since_ns, "until": until_ns}
        try:
            rows = self.store.query(SQL, params)
        except Exception as exc:  # optional evidence: never fail the close for it
            log.warning("attribute counts for incident on %r not read: %s", service[:100], exc)
            return []
        return classify(rows)
