"""ClickHouse type -> Arrow type mapping and columnar table building."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from pipeline.store.arrow import arrow_type, to_arrow


@pytest.mark.parametrize(
    ("ch_type", "expected"),
    [
        ("String", pa.string()),
        ("LowCardinality(String)", pa.string()),
        ("UInt64", pa.uint64()),
        ("Float64", pa.float64()),
        ("DateTime64(9)", pa.timestamp("ns", tz="UTC")),
        ("DateTime64(3)", pa.timestamp("ms", tz="UTC")),
        ("SimpleAggregateFunction(min, DateTime)", pa.timestamp("s", tz="UTC")),
        ("Nullable(String)", pa.string()),
        ("Array(LowCardinality(String))", pa.list_(pa.string())),
        ("Map(LowCardinality(String), String)", pa.map_(pa.string(), pa.string())),
        (
            "Array(Map(LowCardinality(String), String))",
            pa.list_(pa.map_(pa.string(), pa.string())),
        ),
    ],
)
def test_arrow_type(ch_type: str, expected: pa.DataType) -> None:
    assert arrow_type(ch_type) == expected


def test_to_arrow_keeps_maps_nested_and_timestamps() -> None:
    types = {
        "ts": "DateTime64(3)",
        "m": "Map(String, Float64)",
        "Events.Attributes": "Array(Map(LowCardinality(String), String))",
    }
    table = to_arrow(
        {
            "ts": [1_700_000_000_123, dt.datetime(2024, 1, 1, tzinfo=dt.UTC)],
            "m": [{"p95": 1.5}, {}],
            "Events.Attributes": [[{"a": "1"}, {}], []],
        },
        types,
    )
    assert table.num_rows == 2
    assert table.column("m").to_pylist() == [[("p95", 1.5)], []]
    assert table.column("Events.Attributes").to_pylist() == [[[("a", "1")], []], []]
    first = table.column("ts")[0].as_py()
    assert first == dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.UTC)


def test_unknown_column_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown column 'x'"):
        to_arrow({"x": [1]}, {"a": "UInt8"})
