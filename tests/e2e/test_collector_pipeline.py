"""End to end: telemetrygen -> otelcol-spanstream (OTLP gRPC) -> Kafka -> a spanstream
worker -> ClickHouse (embedded chdb).

The Collector runs with the very configs infra/collector/README.md tells users to
run (``otelcol-kafka.yaml`` for ``otlp_proto``, ``otelcol-kafka-json.yaml`` for
``otlp_json``), the codec chosen with ``SPANSTREAM_COLLECTOR_COMPRESSION`` as
documented there; the topics come from topics/topics.yaml as
``spanstream topics apply`` creates them; the worker is a real ``spanstream
worker`` process, read through its /query and Prometheus endpoints.

Per case it checks that spanstream counted exactly the spans telemetrygen sent,
that every span reached ``otel_traces`` with its service, name, attributes and
parent link, and that the closed RED windows add up to the sent counts per
(service, operation).

Needs infra/collector/build.sh to have run (skips locally without it, fails
under CI=true) and a Kafka broker (the ``kafka_bootstrap`` fixture).
"""

from __future__ import annotations

import os
import struct
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from pipeline.local.worker import LocalWorker
from pipeline.settings import Settings, load_settings
from pipeline.topics.admin import TopicAdmin
from pipeline.topics.declarations import DEFAULT_TOPICS_FILE, load_declarations
from pipeline.topics.reconcile import apply
from tests.harness.collector import (
    COLLECTOR_DIR,
    LocalCollector,
    collector_built,
    run_telemetrygen,
)

pytestmark = pytest.mark.e2e

#: One telemetrygen per service, all at once, each sending TRACES_PER_SERVICE traces of
#: a root (``lets-go``, kind Client) and CHILD_SPANS children (``okey-dokey-<i>``, Server).
SERVICES = ("frontend", "checkout", "cart")
TRACES_PER_SERVICE = 20
CHILD_SPANS = 3
SPAN_NAMES = ("lets-go", *(f"okey-dokey-{i}" for i in range(CHILD_SPANS)))
#: Short windows so they close seconds after the last span (watermark + idle advance).
WINDOW_SECONDS = 5
ALLOWED_LATENESS_SECONDS = 2
#: Spans per second per service: 80 spans take >= 6.6 s, longer than a window, so every
#: series spans at least two windows and the first closes while spans still arrive.
RATE = 12
#: Seconds for spanstream to count / store every span, and for the windows to close.
INGEST_TIMEOUT = 60.0
WINDOWS_TIMEOUT = 60.0
#: Compression codec ids in a Kafka v2 record batch's attributes (lowest 3 bits).
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


@pytest.fixture(autouse=True, scope="session")
def _collector_built() -> None:
    if collector_built():
        return
    reason = "otelcol-spanstream/telemetrygen not built: run infra/collector/build.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(f"needed under CI=true: {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Names:
    """Per-test topic and group names, so tests sharing the broker never meet."""

    suffix: str

    @property
    def env(self) -> dict[str, str]:
        s = self.suffix
        return {
            "SPANSTREAM_INPUT_TOPIC": f"e2e-otlp-spans-{s}",
            "SPANSTREAM_DLQ_TOPIC": f"e2e-dlq-{s}",
            "SPANSTREAM_ALERT_TOPIC": f"e2e-alerts-{s}",
            "SPANSTREAM_PARTIALS_TOPIC": f"e2e-partials-{s}",
            "SPANSTREAM_GROUP": f"e2e-{s}",
        }


@pytest.fixture
def names(kafka_bootstrap: str) -> Iterator[Names]:
    """Unique names; afterwards deletes every topic carrying them (Faust's included)."""
    names = Names(uuid.uuid4().hex[:10])
    yield names
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    ours = [t for t in admin.list_topics(timeout=10).topics if names.suffix in t]
    for future in admin.delete_topics(ours, operation_timeout=15).values() if ours else ():
        future.result(15)


def _apply_topics(settings: Settings) -> None:
    """What ``spanstream topics apply`` does, with this test's names."""
    decls = load_declarations(DEFAULT_TOPICS_FILE, settings)
    result = apply(TopicAdmin(settings.kafka_bootstrap, security=settings.kafka_security), decls)
    assert all(item.action == "ok" for item in result.final), result


def _metric_by_label(worker: LocalWorker, name: str, label: str) -> dict[str, float]:
    """Samples of one Prometheus metric of the worker, by the value of ``label``."""
    url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels, value = line[len(name) + 1 :].rsplit("} ", 1)
        pairs = dict(p.split("=", 1) for p in labels.split(",") if p)
        out[pairs.get(label, "").strip('"')] = float(value)
    return out


def _broker_log_dirs(admin: AdminClient) -> list[Path]:
    """The broker's ``log.dirs``, when that broker runs on this machine."""
    node = next(iter(admin.list_topics(timeout=10).brokers))
    resource = ConfigResource(ResourceType.BROKER, str(node))
    config = admin.describe_configs([resource])[resource].result(15)
    entry = config.get("log.dirs") or config.get("log.dir")
    dirs = [Path(d) for d in (entry.value or "").split(",") if d] if entry else []
    return [d for d in dirs if d.is_dir()]


def _codecs_on_disk(bootstrap: str, topic: str) -> Counter[str]:
    """Record batches per compression codec that the broker stored for ``topic``.

    With ``compression.type: producer`` (topics.yaml) the broker keeps the
    Collector's batches as they came, so this is the Collector's codec. Empty
    when the broker's log directory is not on this machine.
    """
    codecs: Counter[str] = Counter()
    for log_dir in _broker_log_dirs(AdminClient({"bootstrap.servers": bootstrap})):
        for segment in log_dir.glob(f"{topic}-*/*.log"):
            data = segment.read_bytes()
            pos = 0
            # v2 batch: baseOffset int64, batchLength int32, leaderEpoch int32,
            # magic int8, crc uint32, attributes int16, ...
            while pos + 23 <= len(data):
                (length,) = struct.unpack_from(">i", data, pos + 8)
                (attributes,) = struct.unpack_from(">h", data, pos + 21)
                codecs[CODECS.get(attributes & 0x7, "?")] += 1
                pos += 12 + length
    return codecs


CASES = [
    pytest.param("otelcol-kafka.yaml", "otlp_proto", "lz4", id="otlp_proto+lz4"),
    pytest.param("otelcol-kafka.yaml", "otlp_proto", "zstd", id="otlp_proto+zstd"),
    # No SPANSTREAM_COLLECTOR_COMPRESSION: the config's default, lz4.
    pytest.param("otelcol-kafka-json.yaml", "otlp_json", None, id="otlp_json"),
]


@pytest.mark.parametrize(("config", "encoding", "compression"), CASES)
def test_collector_to_clickhouse(
    kafka_bootstrap: str,
    names: Names,
    tmp_path: Path,
    config: str,
    encoding: str,
    compression: str | None,
) -> None:
    started = time.monotonic()
    env = {
        **names.env,
        "SPANSTREAM_KAFKA": kafka_bootstrap,
        # Keep every trace, so otel_traces must hold every span sent.
        "SPANSTREAM_BASELINE_RATE": "1.0",
        "SPANSTREAM_DECISION_WAIT_SECONDS": "1",
        "SPANSTREAM_WINDOW_SECONDS": str(WINDOW_SECONDS),
        "SPANSTREAM_ALLOWED_LATENESS_SECONDS": str(ALLOWED_LATENESS_SECONDS),
    }
    if compression is not None:
        env["SPANSTREAM_COLLECTOR_COMPRESSION"] = compression
    settings = load_settings(env)
    _apply_topics(settings)
    case = names.suffix

    worker = LocalWorker(
        tmp_path / "worker", bootstrap=kafka_bootstrap, store_url=f"chdb:{tmp_path / 'ch'}", env=env
    )
    # As in production: the worker is up and consuming before the spans flow.
    with worker, LocalCollector(COLLECTOR_DIR / config, env, log_dir=tmp_path) as collector:
        ready_at = time.monotonic()
        sent = run_telemetrygen(
            collector.otlp_grpc_endpoint,
            traces=TRACES_PER_SERVICE,
            child_spans=CHILD_SPANS,
            services=SERVICES,
            rate=RATE,
            concurrent=True,
            span_attributes={"e2e.case": case, "e2e.number": 7},
            resource_attributes={"deployment.environment.name": "e2e"},
        )
        assert sent.spans == len(SERVICES) * TRACES_PER_SERVICE * len(SPAN_NAMES)
        sent_at = time.monotonic()
        assert sent_at - ready_at >= WINDOW_SECONDS
        # The Collector's own accounting: it took and exported every span.
        worker.wait_for(
            lambda: collector.metric("otelcol_exporter_sent_spans") >= sent.spans,
            INGEST_TIMEOUT,
            "the Collector to export every span to Kafka",
        )
        assert collector.metric("otelcol_receiver_accepted_spans") == sent.spans
        assert collector.metric("otelcol_exporter_sent_spans") == sent.spans
        assert collector.metric("otelcol_exporter_send_failed_spans") == 0
        timings, summary = _check_pipeline(worker, sent.spans, sent.traces, case, encoding)
    codecs = _codecs_on_disk(kafka_bootstrap, settings.input_topic)
    if codecs:  # empty when the broker's log directory is elsewhere (SPANSTREAM_KAFKA)
        # The exporter's client (franz-go) sends a batch uncompressed when compressing
        # would not shrink it, e.g. a record of a single small span.
        codec = compression or "lz4"
        assert codecs[codec] > 0, codecs
        assert set(codecs) <= {codec, "none"}, codecs
    print(
        f"\n{config} {compression or 'default'}: {sent.spans} spans, {sent.traces} traces; "
        f"worker+collector up {ready_at - started:.1f}s, telemetrygen {sent_at - ready_at:.1f}s, "
        + ", ".join(f"{what} +{at - sent_at:.1f}s" for what, at in timings.items())
        + f"; {summary}; test {time.monotonic() - started:.1f}s; codecs on disk "
        + (", ".join(f"{c} x{n}" for c, n in sorted(codecs.items())) or "not readable")
    )


def _rows(worker: LocalWorker, sql: str) -> list[list[Any]]:
    return worker.query(" ".join(sql.split()))


def _check_pipeline(
    worker: LocalWorker, spans: int, traces: int, case: str, encoding: str
) -> tuple[dict[str, float], str]:
    """Every check on the worker's side; returns when each stage was done, and a summary."""
    timings: dict[str, float] = {}
    # 1. spanstream's accounting: every span decoded once, nothing dead-lettered.
    worker.wait_for(
        lambda: worker.metric("spanstream_spans_in_total") >= spans,
        INGEST_TIMEOUT,
        f"spanstream_spans_in_total to reach {spans}",
    )
    per_service = _metric_by_label(worker, "spanstream_spans_in_total", "service")
    assert per_service == {s: spans / len(SERVICES) for s in SERVICES}
    assert set(_metric_by_label(worker, "spanstream_messages_in_total", "encoding")) == {encoding}
    assert worker.metric("spanstream_decode_errors_total") == 0
    assert worker.metric("spanstream_dlq_records_total") == 0
    timings["counted"] = time.monotonic()

    # 2. otel_traces: every span (baseline rate 1.0 keeps every trace).
    worker.wait_for(
        lambda: (
            worker.count("otel_traces") >= spans
            and worker.metric("spanstream_spans_kept_total") >= spans
        ),
        INGEST_TIMEOUT,
        f"{spans} rows in otel_traces",
    )
    assert worker.count("otel_traces") == spans
    assert worker.metric("spanstream_spans_kept_total") == spans
    timings["stored"] = time.monotonic()
    per_name = _rows(
        worker,
        """SELECT ServiceName, SpanName, SpanKind, count(), uniqExact(TraceId)
           FROM otel_traces GROUP BY ServiceName, SpanName, SpanKind
           ORDER BY ServiceName, SpanName""",
    )
    expected = sorted(
        [s, n, "Client" if n == "lets-go" else "Server", TRACES_PER_SERVICE, TRACES_PER_SERVICE]
        for s in SERVICES
        for n in SPAN_NAMES
    )
    assert per_name == expected
    assert worker.count("otel_traces", "ParentSpanId = ''") == traces

    # Attributes: the span ones telemetrygen sets itself and ours, the resource one ours.
    attributes = _rows(
        worker,
        f"""SELECT countIf(SpanAttributes['e2e.case'] = '{case}'),
                   countIf(SpanAttributes['e2e.number'] = '7'),
                   countIf(SpanAttributes['network.peer.address'] = '1.2.3.4'),
                   countIf(ResourceAttributes['deployment.environment.name'] = 'e2e'),
                   countIf(ResourceAttributes['service.name'] = ServiceName),
                   countIf(length(TraceId) = 32 AND length(SpanId) = 16)
            FROM otel_traces""",
    )
    assert attributes == [[spans] * 6]

    # Parent/child: every child's ParentSpanId is the SpanId of its trace's root.
    links = _rows(
        worker,
        """SELECT count(), countIf(c.ParentSpanId = r.SpanId), uniqExact(c.TraceId)
           FROM otel_traces AS c
           INNER JOIN (SELECT TraceId, SpanId FROM otel_traces WHERE ParentSpanId = '') AS r
           ON c.TraceId = r.TraceId
           WHERE c.ParentSpanId != ''""",
    )
    assert links == [[traces * CHILD_SPANS, traces * CHILD_SPANS, traces]]

    # 3. RED windows: once closed, requests (plus any late spans) add up to what was sent.
    sql = """SELECT ServiceName, SpanName, sum(Requests) + sum(LateSpans), sum(Errors)
             FROM spanstream_red_metrics FINAL GROUP BY ServiceName, SpanName
             ORDER BY ServiceName, SpanName"""
    want = sorted([s, n, TRACES_PER_SERVICE, 0] for s in SERVICES for n in SPAN_NAMES)
    worker.wait_for(lambda: _rows(worker, sql) == want, WINDOWS_TIMEOUT, "RED windows to close")
    timings["windows closed"] = time.monotonic()

    # Per window: Requests is the stored spans of that (service, operation, window) by
    # start time; a span counted late instead shows up in LateSpans of a later window.
    window_ms = WINDOW_SECONDS * 1000
    red = _rows(
        worker,
        """SELECT ServiceName, SpanName, toUnixTimestamp64Milli(WindowStart),
                   toUnixTimestamp64Milli(WindowEnd), Requests, LateSpans
            FROM spanstream_red_metrics FINAL WHERE Requests > 0 OR LateSpans > 0""",
    )
    stored = _rows(
        worker,
        f"""SELECT ServiceName, SpanName,
                   intDiv(toUnixTimestamp64Milli(Timestamp), {window_ms}) * {window_ms} AS w,
                   count()
            FROM otel_traces GROUP BY ServiceName, SpanName, w""",
    )
    assert all(end - start == window_ms for _, _, start, end, _, _ in red), red
    for service in SERVICES:
        for name in SPAN_NAMES:
            starts = {w for s, n, w, _ in stored if (s, n) == (service, name)}
            assert len(starts) >= 2, (service, name, stored)
    in_windows = {(s, n, start): req for s, n, start, _, req, _ in red if req}
    per_window = {(s, n, w): c for s, n, w, c in stored}
    assert all(req <= per_window.get(k, 0) for k, req in in_windows.items()), (red, stored)
    for service in SERVICES:
        for name in SPAN_NAMES:
            late = sum(r[5] for r in red if r[0] == service and r[1] == name)
            missing = sum(
                c - in_windows.get(k, 0) for k, c in per_window.items() if k[:2] == (service, name)
            )
            assert missing == late, (service, name, red, stored)
    late_spans = sum(r[5] for r in red)
    # Still exactly once, now that everything is done.
    assert worker.metric("spanstream_spans_in_total") == spans
    assert worker.count("otel_traces") == spans
    return timings, f"{len(in_windows)} windows with requests, {late_spans} late spans"
