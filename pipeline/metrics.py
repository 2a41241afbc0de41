"""Every Prometheus metric a worker exports, in one place.

Names follow Prometheus conventions (``spanstream_`` prefix, ``_total`` for
counters, base units). The worker serves them on ``SPANSTREAM_METRICS_PORT``.
"""

from __future__ import annotations

from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from pipeline.spanmetrics.counts import SpanMetrics
from pipeline.spanmetrics.exposition import SpanMetricsCollector

#: No ``*_created`` sample per labelled child: it would double the lines of every
#: per-service counter, and Prometheus ignores it unless created timestamps are enabled.
#: Must run before the first metric below is made (the flag is read per child).
disable_created_metrics()

MESSAGES_IN = Counter(
    "spanstream_messages_in_total", "Kafka records consumed from the input topic", ["encoding"]
)
#: A record's payload bytes are split across its services by span share (see ingest.volume).
BYTES_IN = Counter("spanstream_bytes_in_total", "Payload bytes consumed", ["service"])
SPANS_IN = Counter("spanstream_spans_in_total", "Spans decoded", ["service"])
DECODE_ERRORS = Counter(
    "spanstream_decode_errors_total", "Records that failed to decode", ["reason"]
)
DLQ_RECORDS = Counter(
    "spanstream_dlq_records_total", "Records written to the dead-letter topic", ["reason"]
)
SPANS_KEPT = Counter(
    "spanstream_spans_kept_total", "Spans kept by tail sampling", ["service", "policy"]
)
SPANS_DROPPED = Counter(
    "spanstream_spans_sampled_out_total", "Spans deliberately sampled out", ["service"]
)
#: Estimated otel_traces row bytes (sampling.counters.span_size), not wire bytes.
BYTES_KEPT = Counter("spanstream_bytes_kept_total", "Approximate bytes of kept spans", ["service"])
KEEP_RATIO = Gauge("spanstream_sampling_keep_ratio", "Spans kept / spans decided", ["service"])
#: No service label: the assembler counts one total; per series, see LateSpans in
#: spanstream_red_metrics.
#: Spans aggregated under the overflow name: ``service`` (past SPANSTREAM_MAX_SERVICES)
#: or ``operation`` (past SPANSTREAM_MAX_OPERATIONS_PER_SERVICE), counted at each cut.
OVERFLOW_SPANS = Counter(
    "spanstream_overflow_spans_total", "Spans aggregated under __overflow__", ["kind"]
)
SERVICES_ADMITTED = Gauge(
    "spanstream_services_admitted", "Distinct services aggregated by their own name"
)
LATE_SPANS = Counter("spanstream_late_spans_total", "Spans arriving after their window closed")
PARTIALS_REREAD = Counter(
    "spanstream_partials_reread_total",
    "Partials the window stage's consumer skipped (in a rebalance), read back and merged",
)
WINDOWS_CLOSED = Counter("spanstream_windows_closed_total", "Windows closed and written")
WINDOW_LAG = Gauge(
    "spanstream_window_lag_seconds", "Wall clock minus the end of the newest closed window"
)
INSERT_SECONDS = Histogram(
    "spanstream_clickhouse_insert_seconds",
    "ClickHouse insert latency",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INSERT_ROWS = Histogram(
    "spanstream_clickhouse_batch_rows",
    "Rows per ClickHouse insert",
    ["table"],
    buckets=(1, 10, 100, 1000, 5000, 10000, 50000, 100000),
)
#: Counted at each failed attempt: every failed insert is retried (same rows, same token).
INSERT_RETRIES = Counter(
    "spanstream_clickhouse_insert_retries_total", "Failed inserts retried", ["table"]
)
INSERT_REJECTED = Counter(
    "spanstream_clickhouse_insert_rejected_total",
    "Batches the store refused for their rows (split until the bad rows are dead-lettered)",
    ["table"],
)
DLQ_DELIVERY_FAILURES = Counter(
    "spanstream_dlq_delivery_failures_total",
    "Dead-letter sends that failed (retried; the record's commit waits)",
    ["reason"],
)
DLQ_UNSENT = Gauge(
    "spanstream_dlq_unsent_records",
    "Dead letters the DLQ has not acknowledged yet (each holds back its partition's commit)",
)
#: A changelog record is untrusted input: one that does not parse is skipped, never run.
STATE_REJECTED = Counter(
    "spanstream_state_rejected_total",
    "Stored table values or keys (Faust changelogs) rejected; the series starts over",
    ["table", "reason"],
)
ALERTS = Counter("spanstream_alerts_total", "Alert messages published", ["status", "severity"])
INCIDENTS = Counter(
    "spanstream_incidents_total",
    "Incident records published (opened, updated, resolved)",
    ["status"],
)
SLO_COUNTS = Counter(
    "spanstream_slo_counts_total",
    "SLI counts (one SLO, series and window each) taken in by the SLO owner, by outcome",
    ["outcome"],
)
CONSUMER_LAG = Gauge(
    "spanstream_consumer_lag_messages", "High watermark minus position", ["partition"]
)
BUFFERED_TRACES = Gauge("spanstream_buffered_traces", "Traces waiting for a sampling decision")
#: The service graph (docs/service-graph.md); its edges are the traces_service_graph_*
#: metrics of pipeline.graph.prometheus, named as the Collector's servicegraph connector.
GRAPH_TRACES = Counter("spanstream_graph_traces_total", "Decided traces read by the service graph")
GRAPH_UNPAIRED = Counter(
    "spanstream_graph_unpaired_spans_total",
    "Server/consumer spans whose parent is not in the trace or not a client span",
)
GRAPH_TRUNCATED = Counter(
    "spanstream_graph_truncated_spans_total", "Spans of traces over the graph's size bound"
)
GRAPH_LATE = Counter(
    "spanstream_graph_late_spans_total", "Spans after their trace's decision, not in the graph"
)
GRAPH_PEER_OVERFLOW = Counter(
    "spanstream_graph_peer_overflow_total", "Calls to peers past SPANSTREAM_GRAPH_MAX_PEERS"
)
UNACKED_MESSAGES = Gauge(
    "spanstream_unacked_messages", "Input records consumed but not yet safe to commit"
)

#: Pre-sampling RED metrics under the Collector spanmetrics connector's names
#: (``traces_span_metrics_calls_total``, ``traces_span_metrics_duration_milliseconds``):
#: counted per record by the ingest core, read at each scrape.
SPAN_METRICS = SpanMetrics()
REGISTRY.register(SpanMetricsCollector(SPAN_METRICS))


# -- alert delivery (``spanstream alerts forward``, its own port) -------------------------
DELIVERY_SENT = Counter(
    "spanstream_delivery_sent_total", "Alerts a receiver accepted", ["receiver", "status"]
)
DELIVERY_RETRIES = Counter(
    "spanstream_delivery_retries_total",
    "Failed posts to a receiver that are retried (5xx, 408/425/429, no answer)",
    ["receiver"],
)
DELIVERY_DEAD_LETTERS = Counter(
    "spanstream_delivery_dead_letters_total",
    "Alert records sent to the delivery dead-letter topic",
    ["reason"],
)
DELIVERY_STALE = Counter(
    "spanstream_delivery_stale_total",
    "Alert records not sent: their alert_id was already delivered at this or a higher version",
)
DELIVERY_SKIPPED = Counter(
    "spanstream_delivery_skipped_total",
    "Valid records of the alert topic that are not delivered (incident records), by kind",
    ["kind"],
)
DELIVERY_BLOCKED = Gauge(
    "spanstream_delivery_blocked_seconds",
    "How long the forwarder has been retrying the alert it holds (0: none held)",
)
DELIVERY_REFRESHED = Counter(
    "spanstream_delivery_refreshed_total",
    "Firing alerts re-posted to Alertmanager so they stay firing until resolved",
)


def serve(port: int, bind: str = "127.0.0.1") -> None:
    """Start the metrics HTTP endpoint on ``bind`` (SPANSTREAM_METRICS_BIND; no-op for port 0)."""
    if port:
        start_http_server(port, addr=bind)
