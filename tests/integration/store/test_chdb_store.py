"""The chdb store on the migrated schema: exporter-identical columns, round trips, dedup."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from typing import Any

import pytest

from pipeline.enrich import Enricher
from pipeline.errors import ServiceUnavailable
from pipeline.generate.messages import Framing, to_messages
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.otlp import decode_message
from pipeline.sinks.clickhouse import trace_arrays, trace_columns
from pipeline.store import Store, open_store

pytestmark = pytest.mark.integration

#: otel_traces columns and types as the Collector ClickHouse exporter's
#: traces_table.sql declares them (Nested expanded into Array columns, as
#: system.columns lists them; the two ALIAS columns included).
EXPORTER_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("ParentSpanId", "String"),
    ("TraceState", "String"),
    ("SpanName", "LowCardinality(String)"),
    ("SpanKind", "LowCardinality(String)"),
    ("ServiceName", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("SpanAttributes", "Map(LowCardinality(String), String)"),
    ("Duration", "UInt64"),
    ("StatusCode", "LowCardinality(String)"),
    ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9))"),
    ("Events.Name", "Array(LowCardinality(String))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("Links.TraceId", "Array(String)"),
    ("Links.SpanId", "Array(String)"),
    ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("ResourceAttributeItems", "Array(String)"),
    ("SpanAttributeItems", "Array(String)"),
]

T0 = 1_700_000_000_123_456_789


def span_batch(n: int, offset: int = 0) -> dict[str, list[Any]]:
    """``n`` otel_traces rows, each with one event and one link."""
    ids = range(offset, offset + n)
    return {
        "Timestamp": [T0 + i for i in ids],
        "TraceId": [f"{i:032x}" for i in ids],
        "SpanId": [f"{i:016x}" for i in ids],
        "ParentSpanId": [""] * n,
        "TraceState": [""] * n,
        "SpanName": ["GET /users/{id}"] * n,
        "SpanKind": ["Server"] * n,
        "ServiceName": ["frontend"] * n,
        "ResourceAttributes": [{"service.name": "frontend", "host.name": "h1"}] * n,
        "ScopeName": ["otel"] * n,
        "ScopeVersion": ["1.0"] * n,
        "SpanAttributes": [{"http.route": "/users/{id}", "i": str(i)} for i in ids],
        "Duration": [1_000_000 + i for i in ids],
        "StatusCode": ["Error"] * n,
        "StatusMessage": ["boom"] * n,
        "Events.Timestamp": [[T0 + i + 1] for i in ids],
        "Events.Name": [["exception"]] * n,
        "Events.Attributes": [[{"exception.type": "ValueError"}]] * n,
        "Links.TraceId": [["ab" * 16]] * n,
        "Links.SpanId": [["cd" * 8]] * n,
        "Links.TraceState": [["k=v"]] * n,
        "Links.Attributes": [[{"link.kind": "follows"}]] * n,
    }


def count(store: Store, table: str) -> int:
    return int(store.query(f"SELECT count() FROM {table}")[0][0])


def test_otel_traces_columns_equal_the_exporters(chdb_store: Store) -> None:
    rows = chdb_store.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
        "AND table = 'otel_traces' ORDER BY position"
    )
    assert rows == EXPORTER_COLUMNS


def test_otel_traces_keys_and_settings(chdb_store: Store) -> None:
    [(partition, sorting, primary, ddl)] = chdb_store.query(
        "SELECT partition_key, sorting_key, primary_key, create_table_query FROM system.tables "
        "WHERE database = currentDatabase() AND name = 'otel_traces'"
    )
    assert partition == "toDate(Timestamp)"
    assert sorting == "ServiceName, SpanName, toDateTime(Timestamp), Timestamp"
    assert primary == "ServiceName, SpanName, toDateTime(Timestamp)"
    assert "non_replicated_deduplication_window = 10000" in ddl
    assert "ttl_only_drop_parts = 1" in ddl
    assert "INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1" in ddl
    assert "TTL" not in ddl.split("SETTINGS")[0].split("ORDER BY")[1]


def test_nested_and_map_round_trip(chdb_store: Store) -> None:
    assert chdb_store.insert("otel_traces", span_batch(3)) == 3
    rows = chdb_store.query(
        "SELECT SpanAttributes, `Events.Name`, `Events.Attributes`, `Links.TraceId`, "
        "`Links.Attributes`, toUnixTimestamp64Nano(Timestamp), "
        "toUnixTimestamp64Nano(`Events.Timestamp`[1]) FROM otel_traces ORDER BY SpanId"
    )
    assert rows[1] == (
        {"http.route": "/users/{id}", "i": "1"},
        ["exception"],
        [{"exception.type": "ValueError"}],
        ["ab" * 16],
        [{"link.kind": "follows"}],
        T0 + 1,
        T0 + 2,
    )
    assert count(chdb_store, "otel_traces_trace_id_ts") == 3


def test_dedup_token_makes_a_retry_a_noop(chdb_store: Store) -> None:
    batch = span_batch(50)
    chdb_store.insert("otel_traces", batch, dedup_token="otlp_spans/0/100-149")
    chdb_store.insert("otel_traces", batch, dedup_token="otlp_spans/0/100-149")
    assert count(chdb_store, "otel_traces") == 50
    chdb_store.insert("otel_traces", batch, dedup_token="otlp_spans/0/150-199")
    assert count(chdb_store, "otel_traces") == 100


def test_metrics_and_anomalies_insert(chdb_store: Store) -> None:
    start = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    end = start + dt.timedelta(minutes=1)
    red: dict[str, list[Any]] = {
        "WindowStart": [start],
        "WindowEnd": [end],
        "ServiceName": ["checkout"],
        "SpanName": ["POST /pay"],
        "Requests": [120],
        "Errors": [3],
        "DurationP50Ms": [12.5],
        "DurationP95Ms": [80.0],
        "DurationP99Ms": [140.0],
        "DurationMaxMs": [300.0],
        "LateSpans": [1],
    }
    assert chdb_store.insert("spanstream_red_metrics", red, dedup_token="w1") == 1
    alert: dict[str, list[Any]] = {
        "AlertId": ["a1", "a1"],
        "Version": [1, 2],
        "Status": ["firing", "resolved"],
        "ServiceName": ["checkout"] * 2,
        "SpanName": ["POST /pay"] * 2,
        "WindowStart": [start] * 2,
        "WindowEnd": [end] * 2,
        "Metrics": [["error_rate"]] * 2,
        "Observed": [{"error_rate": 0.25}, {"error_rate": 0.01}],
        "Expected": [{"error_rate": 0.02}] * 2,
        "Score": [0.97, 0.1],
        "Severity": ["critical", "info"],
        "Detector": ["hst"] * 2,
        "ExemplarTraceIds": [["ab" * 16], []],
        "Summary": ["error rate 25%", "recovered"],
        "CreatedAt": [start, end],
    }
    chdb_store.insert("spanstream_anomalies", alert)
    latest = chdb_store.query("SELECT Status, Observed FROM spanstream_anomalies FINAL")
    assert latest == [("resolved", {"error_rate": 0.01})]
    assert chdb_store.query("SELECT Requests, DurationP95Ms FROM spanstream_red_metrics") == [
        (120, 80.0)
    ]


def test_second_directory_in_one_process_is_refused(chdb_store: Store, tmp_path: Any) -> None:
    with pytest.raises(ServiceUnavailable, match="one directory per process"):
        open_store(f"chdb:{tmp_path / 'other'}")


def test_a_batch_is_inserted_as_one_block(chdb_store: Store) -> None:
    """20k full spans, one INSERT statement (columnar through ``Python()``, never per row).

    Speed is measured by ``spanstream bench``, not here.
    """
    statements: list[str] = []
    session = chdb_store._session  # type: ignore[attr-defined]

    class Spy:
        def query(self, sql: str, *args: object, **kwargs: object) -> object:
            statements.append(sql)
            return session.query(sql, *args, **kwargs)

        def __getattr__(self, name: str) -> object:
            return getattr(session, name)

    chdb_store._session = Spy()  # type: ignore[attr-defined]
    try:
        chdb_store.insert("otel_traces", span_batch(20_000))
    finally:
        chdb_store._session = session  # type: ignore[attr-defined]
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert [s.split(" (")[0] for s in inserts] == ["INSERT INTO `otel_traces`"]
    assert "FROM Python(arrow_table)" in inserts[0]
    assert count(chdb_store, "otel_traces") == 20_000


def test_second_process_cannot_open_a_directory_in_use(chdb_store: Store, chdb_url: str) -> None:
    """chdb locks its directory per process: the worker owns it, others must ask the worker."""
    code = (
        "import sys\nfrom pipeline.store import open_store\n"
        "from pipeline.errors import ServiceUnavailable\n"
        f"try:\n    open_store({chdb_url!r})\nexcept ServiceUnavailable as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 3, result.stderr[-500:]
    assert "cannot open chdb directory" in result.stdout


def test_stored_span_ids_finds_replayed_traces_with_an_array_parameter(chdb_store: Store) -> None:
    from pipeline.sinks.clickhouse import stored_span_ids

    batch = span_batch(4)
    chdb_store.insert("otel_traces", batch)
    wanted = [batch["TraceId"][0], batch["TraceId"][2], "f" * 32]
    assert stored_span_ids(chdb_store, wanted) == {
        (batch["TraceId"][i], batch["SpanId"][i]) for i in (0, 2)
    }


@pytest.mark.parametrize("value", ["it's", "back\\slash", "", "ünï"])
def test_array_parameters_are_quoted_for_chdb(chdb_store: Store, value: str) -> None:
    rows = chdb_store.query("SELECT has({v:Array(String)}, {x:String})", {"v": [value], "x": value})
    assert rows == [(True,)]


def test_native_arrays_store_exactly_the_rows_lists_store(chdb_store: Store) -> None:
    """The Arrow path (the worker on chdb) writes the rows of the list path, column for column."""
    spec = StreamSpec(seed=9, start_ns=T0, rate=50.0, count=40)
    enricher = Enricher()
    heads = [
        h
        for m in to_messages(generate_traces(spec), Framing("otlp_proto", seed=9))
        for h in decode_message(m.value, None, max_bytes=1 << 24, enricher=enricher).spans
    ]
    chdb_store.insert("otel_traces", trace_columns(heads), dedup_token="lists")
    chdb_store.insert("otel_traces", trace_arrays(heads), dedup_token="arrays")
    assert count(chdb_store, "otel_traces") == 2 * len(heads)
    pairs = chdb_store.query(
        "SELECT count() FROM (SELECT toString(tuple(*)) AS row, count() AS n "
        "FROM otel_traces GROUP BY row HAVING n = 2)"
    )
    assert pairs[0][0] == len(heads)
