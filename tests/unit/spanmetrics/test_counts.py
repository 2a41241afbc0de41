"""Spanmetrics counts: buckets at their bounds, kind/status capping, label caps, the lock."""

from __future__ import annotations

import pytest

from pipeline import native
from pipeline.enrich import EnrichConfig, Enricher
from pipeline.model import SpanHead
from pipeline.otlp.decode import decode_message
from pipeline.spanmetrics.counts import (
    BOUNDS_NS,
    BUCKETS_MS,
    UNKNOWN_KIND,
    UNKNOWN_STATUS,
    SpanMetrics,
    spanmetrics_add_of,
)
from tests.unit.ingest.records import record, tid

MS = 1_000_000


def head(
    duration_ns: int = 5 * MS,
    kind: int = 2,
    status: int = 0,
    service: str = "api",
    operation: str = "GET /",
) -> SpanHead:
    return native.SpanHead(
        "a" * 32, "1" * 16, "", 0, duration_ns, service, operation, False, 0, b"", 0, 0,
        None, None, kind, status,
    )  # fmt: skip


def test_the_bounds_are_the_connectors_defaults() -> None:
    # connector/spanmetricsconnector/config.go: defaultHistogramBucketsMs
    assert BUCKETS_MS == (2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000,
                          10000, 15000)  # fmt: skip
    assert BOUNDS_NS[0] == 2 * MS and BOUNDS_NS[-1] == 15_000 * MS


@pytest.mark.parametrize(
    ("duration_ns", "bucket"),
    [
        (0, 0),
        (2 * MS, 0),  # le="2" holds 2 ms itself
        (2 * MS + 1, 1),
        (4 * MS, 1),
        (999 * MS, 10),
        (15_000 * MS, 15),
        (15_000 * MS + 1, 16),  # +Inf
        (10**30, 16),  # a broken clock's duration counts, above every bound
    ],
)
def test_a_duration_lands_in_the_first_bucket_whose_bound_it_does_not_exceed(
    duration_ns: int, bucket: int
) -> None:
    for add in (spanmetrics_add_of, native.spanmetrics_add):
        acc: dict[tuple[str, str, int, int], list[int]] = {}
        add([head(duration_ns)], acc, BOUNDS_NS)
        (entry,) = acc.values()
        assert entry[0] == 1 and entry[1] == duration_ns
        assert [i for i, n in enumerate(entry[2:]) if n] == [bucket]


@pytest.mark.parametrize(
    ("kind", "status", "key"),
    [
        (0, 0, (0, 0)),
        (5, 2, (5, 2)),
        (6, 3, (UNKNOWN_KIND, UNKNOWN_STATUS)),
        (-1, -7, (UNKNOWN_KIND, UNKNOWN_STATUS)),
        (2**31 - 1, 99, (UNKNOWN_KIND, UNKNOWN_STATUS)),
    ],
)
def test_kinds_and_statuses_outside_the_enums_share_one_label_set(
    kind: int, status: int, key: tuple[int, int]
) -> None:
    for add in (spanmetrics_add_of, native.spanmetrics_add):
        acc: dict[tuple[str, str, int, int], list[int]] = {}
        add([head(kind=kind, status=status)], acc, BOUNDS_NS)
        assert list(acc) == [("api", "GET /", *key)]


def test_many_odd_kinds_make_one_series_not_many() -> None:
    counts = SpanMetrics()
    counts.add([head(kind=k, status=s) for k in range(6, 500) for s in range(3, 10)])
    assert len(counts) == 1


def test_services_and_operations_past_the_caps_count_under_overflow() -> None:
    enricher = Enricher(EnrichConfig(max_services=1, max_operations_per_service=1))
    counts = SpanMetrics()
    for i, service in enumerate(["checkout", "cart", "shipping"]):
        counts.add(
            decode_message(
                record(tid(i), service=service), None, max_bytes=1 << 20, enricher=enricher
            ).spans
        )
    services = sorted(key[0] for key, _ in counts.snapshot())
    assert services == ["__overflow__", "checkout"]
    overflow = dict(counts.snapshot())[("__overflow__", "GET /", 2, 2)]
    assert overflow[0] == 2


def test_snapshot_is_a_copy_in_key_order() -> None:
    counts = SpanMetrics()
    counts.add([head(service="b"), head(service="a"), head(service="b")])
    snap = counts.snapshot()
    assert [key[0] for key, _ in snap] == ["a", "b"]
    snap[0][1][0] = 1000
    assert counts.snapshot()[0][1][0] == 1


def test_an_empty_record_adds_no_series() -> None:
    counts = SpanMetrics()
    counts.add([])
    assert counts.snapshot() == []
