-- 0004 spanstream_anomalies: one row per alert state change. AlertId is
-- stable for one incident; Version grows with each update ('firing' ->
-- 'resolved'), so ReplacingMergeTree(Version) keeps the latest state per
-- AlertId (read with FINAL for an exact view). Observed/Expected map each
-- metric name in Metrics to its value; ExemplarTraceIds point into otel_traces.
-- The dedup window makes a retried identical insert a no-op.
CREATE TABLE IF NOT EXISTS spanstream_anomalies (
    AlertId String CODEC(ZSTD(1)),
    Version UInt32,
    Status LowCardinality(String),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    WindowStart DateTime64(3),
    WindowEnd DateTime64(3),
    Metrics Array(String),
    Observed Map(String, Float64),
    Expected Map(String, Float64),
    Score Float64,
    Severity LowCardinality(String),
    Detector LowCardinality(String),
    ExemplarTraceIds Array(String) CODEC(ZSTD(1)),
    Summary String CODEC(ZSTD(1)),
    CreatedAt DateTime64(3)
) ENGINE = ReplacingMergeTree(Version)
ORDER BY AlertId
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 10000;
