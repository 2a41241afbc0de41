"""The exposition a scrape gets: the Collector spanmetrics names, labels and buckets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline import native
from pipeline.model import SpanHead
from pipeline.spanmetrics.counts import BUCKETS_MS, SpanMetrics
from pipeline.spanmetrics.exposition import SpanMetricsCollector

MS = 1_000_000


def head(ms: float, service: str = "api", kind: int = 2, status: int = 0) -> SpanHead:
    return native.SpanHead(
        "a" * 32, "1" * 16, "", 0, int(ms * MS), service, "GET /cart", False, 0, b"", 0, 0,
        None, None, kind, status,
    )  # fmt: skip


def scrape(counts: SpanMetrics) -> str:
    registry = CollectorRegistry()
    registry.register(SpanMetricsCollector(counts))
    return generate_latest(registry).decode()


def test_the_samples_are_named_and_labelled_as_the_collector_exports_them() -> None:
    counts = SpanMetrics()
    counts.add([head(3), head(3), head(20_000, status=2)])
    text = scrape(counts)
    assert "# TYPE traces_span_metrics_calls_total counter" in text
    assert "# TYPE traces_span_metrics_duration_milliseconds histogram" in text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    ok = {"service_name": "api", "span_name": "GET /cart", "span_kind": "SPAN_KIND_SERVER"}
    unset = tuple(sorted({**ok, "status_code": "STATUS_CODE_UNSET"}.items()))
    error = tuple(sorted({**ok, "status_code": "STATUS_CODE_ERROR"}.items()))
    assert samples[("traces_span_metrics_calls_total", unset)] == 2
    assert samples[("traces_span_metrics_calls_total", error)] == 1
    assert samples[("traces_span_metrics_duration_milliseconds_sum", unset)] == 6.0
    assert samples[("traces_span_metrics_duration_milliseconds_count", error)] == 1
    le4 = tuple(sorted({**dict(unset), "le": "4"}.items()))
    assert samples[("traces_span_metrics_duration_milliseconds_bucket", le4)] == 2
    assert (  # le as Go writes it; labels in the order prometheus_client writes them
        'traces_span_metrics_duration_milliseconds_bucket{le="1400",service_name="api",'
        'span_kind="SPAN_KIND_SERVER",span_name="GET /cart",status_code="STATUS_CODE_UNSET"} 2.0'
    ) in text.splitlines()


def test_every_default_bound_is_a_bucket_then_inf() -> None:
    counts = SpanMetrics()
    counts.add([head(ms) for ms in (1, 5, 16_000)])
    (family,) = (
        f
        for f in text_string_to_metric_families(scrape(counts))
        if f.name == "traces_span_metrics_duration_milliseconds"
    )
    buckets = [(s.labels["le"], s.value) for s in family.samples if s.name.endswith("_bucket")]
    assert [le for le, _ in buckets] == [*(str(b) for b in BUCKETS_MS), "+Inf"]
    assert [n for _, n in buckets] == [1, 1, 2, *[2] * 13, 3]


def test_adversarial_label_values_are_escaped_and_read_back_unchanged() -> None:
    nasty = 'we"ird\\svc\nname{}'
    counts = SpanMetrics()
    counts.add([head(1, service=nasty, kind=77, status=-1)])
    (calls,) = (
        f for f in text_string_to_metric_families(scrape(counts)) if f.name.endswith("calls")
    )
    (sample,) = calls.samples
    assert sample.labels == {
        "service_name": nasty,
        "span_name": "GET /cart",
        "span_kind": "",
        "status_code": "",
    }


def test_no_spans_yet_gives_the_families_without_samples() -> None:
    text = scrape(SpanMetrics())
    assert "# TYPE traces_span_metrics_calls_total counter" in text
    assert "traces_span_metrics_calls_total{" not in text
