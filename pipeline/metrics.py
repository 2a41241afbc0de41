"""Every Prometheus metric a worker exports, in one place.

Names follow Prometheus conventions (``spanstream_`` prefix, ``_total`` for
counters, base units). The worker serves them on ``SPANSTREAM_METRICS_PORT``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
SLO_COUNTS = Counter(
    "spanstream_slo_counts_total",
    "SLI counts (one SLO, series and window each) taken in by the SLO owner, by outcome",
    ["outcome"],
)
CONSUMER_LAG = Gauge(
    "spanstream_consumer_lag_messages", "High watermark minus position", ["partition"]
)
BUFFERED_TRACES = Gauge("spanstream_buffered_traces", "Traces waiting for a sampling decision")
UNACKED_MESSAGES = Gauge(
    "spanstream_unacked_messages", "Input records consumed but not yet safe to commit"
)


def serve(port: int, bind: str = "127.0.0.1") -> None:
    """Start the metrics HTTP endpoint on ``bind`` (SPANSTREAM_METRICS_BIND; no-op for port 0)."""
    if port:
        start_http_server(port, addr=bind)
