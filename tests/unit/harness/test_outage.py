"""OutageStore: every call fails while the switch file exists, like a stopped server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConfigError, ServiceUnavailable, SinkUnavailable
from pipeline.query import QueryLimits, open_reader
from tests.harness.outage import SWITCH_ENV, OutageStore, main


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def execute(self, sql: str) -> None:
        self.calls.append(sql)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self.calls.append(sql)
        return [(1,)]

    def insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], dedup_token: str | None = None
    ) -> int:
        self.calls.append(f"insert {table} {dedup_token}")
        return len(next(iter(columns.values())))

    def close(self) -> None:
        self.calls.append("close")

    def reader(self, limits: QueryLimits) -> Any:
        return RecordingReader(self.calls)


class RecordingReader:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def rows(self, sql: str, query_id: str) -> list[tuple[Any, ...]]:
        self.calls.append(sql)
        return [(1,)]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.execute("CREATE TABLE t"), ServiceUnavailable),
        (lambda s: s.query("SELECT 1"), ServiceUnavailable),
        (lambda s: s.insert("t", {"a": [1, 2]}, "tok"), SinkUnavailable),
        # /query's read-only session: the worker is not ready until /query answers.
        (lambda s: open_reader(s, QueryLimits()).rows("SELECT 1", "q"), ServiceUnavailable),
    ],
)
def test_every_call_fails_while_the_switch_exists_and_passes_after(
    tmp_path: Path, call: Any, error: type[Exception]
) -> None:
    inner = Recorder()
    store = OutageStore(inner, tmp_path / "down")
    call(store)
    (tmp_path / "down").touch()
    with pytest.raises(error, match="simulated"):
        call(store)
    (tmp_path / "down").unlink()
    call(store)
    assert len(inner.calls) == 2 and store.refused == 1


def test_a_refused_insert_asks_for_a_retry(tmp_path: Path) -> None:
    (tmp_path / "down").touch()
    with pytest.raises(SinkUnavailable) as caught:
        OutageStore(Recorder(), tmp_path / "down").insert("t", {"a": [1]})
    assert caught.value.retry_after > 0


def test_the_entry_point_needs_the_switch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SWITCH_ENV, raising=False)
    with pytest.raises(ConfigError, match=SWITCH_ENV):
        main(["worker", "--help"])
