-- 0002 otel_traces_trace_id_ts + otel_traces_trace_id_ts_mv: the exporter's
-- trace-id lookup (sqltemplates/traces_id_ts_lookup_table.sql and
-- traces_id_ts_lookup_mv.sql). A trace's first/last span time per TraceId
-- lets a "show trace X" query read only the matching otel_traces partitions.
--
-- The window setting is spanstream's: when an insert into otel_traces is
-- dropped as a duplicate, ClickHouse still runs the view and deduplicates the
-- view's block only if the target table keeps a window too. (Min/max rows
-- are harmless twice, but this keeps the two tables' row counts consistent.)
-- TTL: as in 0001, rendered from SPANSTREAM_TTL_DAYS.
CREATE TABLE IF NOT EXISTS otel_traces_trace_id_ts (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
{{TTL toDate(Start)}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_traces_trace_id_ts_mv
TO otel_traces_trace_id_ts
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM otel_traces
WHERE TraceId != ''
GROUP BY TraceId;
