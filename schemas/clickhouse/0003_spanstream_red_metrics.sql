-- 0003 spanstream_red_metrics: one row per closed window per service and
-- normalized operation (SpanName holds the operation, e.g. "GET /users/{id}"),
-- written by the worker's window stage.
--
-- ReplacingMergeTree on (ServiceName, SpanName, WindowStart): a window that is
-- re-emitted after a replay replaces the earlier row at merge time; queries
-- that must not see both use FINAL. The dedup window makes an identical retry
-- (same insert_deduplication_token) a no-op right away.
CREATE TABLE IF NOT EXISTS spanstream_red_metrics (
    WindowStart DateTime64(3) CODEC(Delta(8), ZSTD(1)),
    WindowEnd DateTime64(3) CODEC(Delta(8), ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    Requests UInt64 CODEC(T64, ZSTD(1)),
    Errors UInt64 CODEC(T64, ZSTD(1)),
    DurationP50Ms Float64 CODEC(ZSTD(1)),
    DurationP95Ms Float64 CODEC(ZSTD(1)),
    DurationP99Ms Float64 CODEC(ZSTD(1)),
    DurationMaxMs Float64 CODEC(ZSTD(1)),
    LateSpans UInt64 CODEC(T64, ZSTD(1))
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(WindowStart)
ORDER BY (ServiceName, SpanName, WindowStart)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 10000;
