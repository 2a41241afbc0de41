-- 0005 spanstream_service_graph and spanstream_self_time: the service graph, per
-- window, as increments written by each worker's ingest thread (see
-- docs/service-graph.md).
--
-- Rows are increments: a window's edge (or operation) may have several rows (one
-- per flush of each worker that saw its traces), so queries sum them, e.g.
--   SELECT Client, Server, ConnectionType, sum(Calls), sum(Failed),
--          sumForEach(ServerBuckets) FROM spanstream_service_graph
--   WHERE WindowStart >= now() - INTERVAL 1 HOUR GROUP BY Client, Server, ConnectionType
-- Latency buckets are per-bucket (not cumulative) counts over the upper bounds
-- 2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000 ms
-- plus one bucket above (the servicegraph connector's default buckets).
-- The dedup window makes an identical retry (same insert_deduplication_token) a no-op.
CREATE TABLE IF NOT EXISTS spanstream_service_graph (
    WindowStart DateTime64(3) CODEC(Delta(8), ZSTD(1)),
    WindowEnd DateTime64(3) CODEC(Delta(8), ZSTD(1)),
    Client LowCardinality(String) CODEC(ZSTD(1)),
    Server LowCardinality(String) CODEC(ZSTD(1)),
    ConnectionType LowCardinality(String) CODEC(ZSTD(1)),
    Calls UInt64 CODEC(T64, ZSTD(1)),
    Failed UInt64 CODEC(T64, ZSTD(1)),
    ClientErrors UInt64 CODEC(T64, ZSTD(1)),
    ServerErrors UInt64 CODEC(T64, ZSTD(1)),
    ClientCount UInt64 CODEC(T64, ZSTD(1)),
    ClientSumMs Float64 CODEC(ZSTD(1)),
    ClientBuckets Array(UInt64) CODEC(ZSTD(1)),
    ServerCount UInt64 CODEC(T64, ZSTD(1)),
    ServerSumMs Float64 CODEC(ZSTD(1)),
    ServerBuckets Array(UInt64) CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toDate(WindowStart)
ORDER BY (Client, Server, ConnectionType, WindowStart)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 10000;

-- Self time per window and (service, normalized operation): the spans' duration minus
-- the union of their children's intervals. ErrorsOriginated counts error spans with
-- no erroring child. Increments like the table above; buckets over the same bounds.
CREATE TABLE IF NOT EXISTS spanstream_self_time (
    WindowStart DateTime64(3) CODEC(Delta(8), ZSTD(1)),
    WindowEnd DateTime64(3) CODEC(Delta(8), ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    Spans UInt64 CODEC(T64, ZSTD(1)),
    ErrorsOriginated UInt64 CODEC(T64, ZSTD(1)),
    SelfSumMs Float64 CODEC(ZSTD(1)),
    SelfBuckets Array(UInt64) CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toDate(WindowStart)
ORDER BY (ServiceName, SpanName, WindowStart)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 10000;
