-- 0006 spanstream_incidents: one row per incident record (opened, updated,
-- resolved). IncidentId is stable (hash of the first alert id); Version grows
-- with each record, so ReplacingMergeTree(Version) keeps the latest state per
-- incident (read with FINAL for an exact view). RootServices, RootOperations,
-- RootScores and RootEvidence are the ranked candidates, best first, index
-- for index; Attributes maps each over-represented attribute to its value.
-- The alerts of an incident are in spanstream_anomalies (AlertIds).
CREATE TABLE IF NOT EXISTS spanstream_incidents (
    IncidentId String CODEC(ZSTD(1)),
    Version UInt32,
    Status LowCardinality(String),
    OpenedAt DateTime64(3),
    UpdatedAt DateTime64(3),
    Services Array(LowCardinality(String)),
    AlertIds Array(String) CODEC(ZSTD(1)),
    RootServices Array(LowCardinality(String)),
    RootOperations Array(String) CODEC(ZSTD(1)),
    RootScores Array(Float64),
    RootEvidence Array(String) CODEC(ZSTD(1)),
    Attributes Map(String, String),
    Summary String CODEC(ZSTD(1))
) ENGINE = ReplacingMergeTree(Version)
ORDER BY IncidentId
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 10000;
