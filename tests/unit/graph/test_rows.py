"""rows: table columns of drained increments, in the migration's column order."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.graph.edges import (
    DATABASE,
    EdgeKey,
    EdgeStats,
    GraphWindow,
    OperationKey,
    SelfTimeStats,
)
from pipeline.graph.histogram import BOUNDS_S, buckets, sketch_of
from pipeline.graph.rows import EDGE_COLUMNS, SELF_TIME_COLUMNS, edge_columns, self_time_columns
from pipeline.windows.latency_sketch import LatencySketch

MIGRATION = Path(__file__).parents[3] / "schemas/clickhouse/0005_spanstream_service_graph.sql"


def table_columns(table: str) -> tuple[str, ...]:
    sql = MIGRATION.read_text()
    body = sql.split(f"CREATE TABLE IF NOT EXISTS {table} (")[1].split(") ENGINE")[0]
    return tuple(re.findall(r"^\s+(\w+) ", body, re.MULTILINE))


def test_columns_are_the_migrations() -> None:
    assert table_columns("spanstream_service_graph") == EDGE_COLUMNS
    assert table_columns("spanstream_self_time") == SELF_TIME_COLUMNS


def test_rows_of_two_windows() -> None:
    first, second = GraphWindow(0, 60_000_000_000), GraphWindow(60_000_000_000, 120_000_000_000)
    for w, ms in ((first, 1), (second, 3_000)):
        e = w.edges[EdgeKey("a", "pg", DATABASE)] = EdgeStats()
        e.add(ms * 1_000_000, ms * 1_000_000, True, False)
        st = w.self_time[OperationKey("a", "SELECT")] = SelfTimeStats()
        st.add(ms * 1_000_000, True)
    cols = edge_columns([first, second])
    assert cols["WindowStart"] == [0, 60_000]
    assert cols["Failed"] == [1, 1] and cols["ClientErrors"] == [1, 1]
    assert cols["ServerBuckets"][1][BOUNDS_S.index(5.0)] == 1
    assert [round(x) for x in cols["ClientSumMs"]] == [1, 3_000]
    own = self_time_columns([first, second])
    assert own["Spans"] == [1, 1] and own["ErrorsOriginated"] == [1, 1]
    assert own["SelfSumMs"] == [1.0, 3_000.0]
    assert all(len(b) == len(BOUNDS_S) + 1 for b in own["SelfBuckets"])


def test_buckets_count_every_value_once() -> None:
    values = [0, 1, 1_999_999, 2_000_000, 7_000_000, 20_000_000_000, -3]
    counts, _ = buckets(sketch_of(values))
    assert sum(counts) == len(values)
    assert counts[-1] == 1  # 20 s is above the last bound
    assert buckets(LatencySketch()) == ([0] * (len(BOUNDS_S) + 1), 0.0)
