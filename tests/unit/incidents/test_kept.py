"""Attribute counts from kept spans: the query, what is abnormal, a failing store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.incidents.attributes import KEYS
from pipeline.incidents.kept import KeptSpanAttributes


class FakeStore:
    def __init__(self, rows: list[tuple[Any, ...]] | Exception) -> None:
        self.rows = rows
        self.calls: list[tuple[str, Mapping[str, Any] | None]] = []

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self.calls.append((sql, params))
        if isinstance(self.rows, Exception):
            raise self.rows
        return self.rows


def row(op: str, ms: int, error: bool, pod: str) -> tuple[Any, ...]:
    values = {"k8s.pod.name": pod, "service.version": "1.0"}
    return (op, ms * 1_000_000, error, *(values.get(k, "") for k in KEYS))


def test_the_service_name_is_a_parameter_and_slow_spans_are_abnormal() -> None:
    rows = [row("GET", 10, False, f"p{i % 4}") for i in range(40)] + [
        row("GET", 50, False, "p1")
    ] * 8
    store = FakeStore(rows)
    spans = KeptSpanAttributes(store)("x' OR 1=1 --", 0, 10)  # type: ignore[arg-type]
    sql, params = store.calls[0]
    assert "x' OR" not in sql and params == {"service": "x' OR 1=1 --", "since": 0, "until": 10}
    assert sum(bad for _, bad in spans) == 8
    assert all(attrs["k8s.pod.name"] == "p1" for attrs, bad in spans if bad)
    assert "http.response.status_code" not in spans[0][0]  # empty values are absent


def test_a_failing_store_yields_no_evidence() -> None:
    assert KeptSpanAttributes(FakeStore(RuntimeError("down")))("s", 0, 1) == []  # type: ignore[arg-type]
