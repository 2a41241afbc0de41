-- 0005 spanstream_slo_burn: one row per SLO per evaluated (closed) window, written
-- by the worker that owns the SLO's burn state (docs/slo.md).
--
-- Good/Total are the window's exact pre-sampling counts of the SLO's requests;
-- BurnRates maps each rule window ('5m', '1h', ...) to the burn rate over it at the
-- end of this window; BudgetRemaining is 1 - bad / (error budget * total) over the
-- compliance window (1: untouched, 0: spent, < 0: overspent); Firing lists the
-- severities ('page', 'ticket') whose burn-rate rules fire. ReplacingMergeTree on
-- (Slo, WindowStart): a window evaluated again after a crash replaces the earlier row;
-- read with FINAL for an exact view.
CREATE TABLE IF NOT EXISTS spanstream_slo_burn (
    Slo LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Sli LowCardinality(String),
    Objective Float64,
    WindowStart DateTime64(3) CODEC(Delta(8), ZSTD(1)),
    WindowEnd DateTime64(3) CODEC(Delta(8), ZSTD(1)),
    Good UInt64 CODEC(T64, ZSTD(1)),
    Total UInt64 CODEC(T64, ZSTD(1)),
    BurnRates Map(String, Float64),
    BudgetRemaining Float64,
    Firing Array(LowCardinality(String))
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(WindowStart)
ORDER BY (Slo, WindowStart)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 10000;
