"""The native (clickhouse-driver) store against a real server process.

Debian's ClickHouse is 18.16, too old for spanstream's schema, so these tests
use a table of their own; the schema suite runs on chdb (and on Docker's
current server when a Docker engine is available).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ServiceUnavailable, SinkUnavailable
from pipeline.migrate import migrate
from pipeline.query_check import QueryRefused
from pipeline.store import QueryError, Store, open_store
from tests.harness.clickhouse_server import LocalClickHouse, clickhouse_installed

pytestmark = pytest.mark.integration


@pytest.fixture
def native_store(clickhouse_server_url: str) -> Iterator[Store]:
    store = open_store(clickhouse_server_url)
    yield store
    store.close()


def make_table(store: Store) -> str:
    table = f"t_{uuid.uuid4().hex[:10]}"
    store.execute(
        f"CREATE TABLE {table} (id UInt64, name String, tags Array(String), at DateTime) "
        "ENGINE = MergeTree ORDER BY id"
    )
    return table


def test_columnar_insert_and_query(native_store: Store) -> None:
    table = make_table(native_store)
    n = 20_000
    columns: dict[str, list[Any]] = {
        "id": list(range(n)),
        "name": [f"n{i}" for i in range(n)],
        "tags": [["a", str(i % 3)] for i in range(n)],
        "at": [1_700_000_000 + i for i in range(n)],
    }
    began = time.perf_counter()
    assert native_store.insert(table, columns) == n
    elapsed = time.perf_counter() - began
    rows = native_store.query(
        f"SELECT count(), sum(id), max(name) FROM {table} WHERE has(tags, {{tag:String}})",
        {"tag": "2"},
    )
    assert rows == [(sum(1 for i in range(n) if i % 3 == 2), sum(range(2, n, 3)), "n9998")]
    print(f"native insert into 18.16: {n / elapsed:,.0f} rows/s")


def test_sql_error_is_a_query_error(native_store: Store) -> None:
    with pytest.raises(QueryError, match=r"ClickHouse at 127\.0\.0\.1:"):
        native_store.query("SELECT * FROM no_such_table_here")


@pytest.mark.skipif(not clickhouse_installed(), reason="clickhouse-server not installed")
def test_reconnects_after_restart_and_reports_outage(tmp_path: Path) -> None:
    server = LocalClickHouse(tmp_path / "ch")
    server.start()
    try:
        store = open_store(server.url)
        table = make_table(store)
        store.insert(table, {"id": [1], "name": ["a"], "tags": [[]], "at": [1_700_000_000]})
        server.restart()
        assert store.query(f"SELECT count() FROM {table}") == [(1,)]
        server.kill()
        with pytest.raises(ServiceUnavailable, match=rf"127\.0\.0\.1:{server.port} unavailable"):
            store.query("SELECT 1")
        with pytest.raises(SinkUnavailable, match="unavailable"):
            store.insert(table, {"id": [2], "name": ["b"], "tags": [[]], "at": [1_700_000_000]})
        server.start()
        assert store.query("SELECT 1") == [(1,)]
        store.close()
    finally:
        server.stop()


def test_schema_on_current_clickhouse_in_docker(docker_clickhouse_url: str) -> None:
    store = open_store(docker_clickhouse_url)
    try:
        report = migrate(store)
        assert len(report.applied) == report.total
        assert migrate(store).applied == []
    finally:
        store.close()


# -- the query endpoint's read-only connection ------------------------------------------


def test_the_query_connection_is_read_only_and_bounded(native_store: Store) -> None:
    from pipeline.query import QueryLimits, QueryRunner, open_reader

    table = make_table(native_store)
    reader = open_reader(native_store, QueryLimits(timeout_seconds=2))
    try:
        for sql in (
            f"INSERT INTO {table} (id) VALUES (1)",
            "SELECT 1 SETTINGS readonly = 0",
            f"DROP TABLE {table}",
        ):
            with pytest.raises(QueryError, match=r"Code: 164\b"):  # READONLY
                reader.rows(sql, uuid.uuid4().hex)
        start = time.monotonic()
        with pytest.raises(QueryError, match=r"Code: 159\b"):  # TIMEOUT_EXCEEDED
            reader.rows("SELECT count() FROM system.numbers", uuid.uuid4().hex)
        assert time.monotonic() - start < 10
    finally:
        reader.close()
    assert native_store.query(f"SELECT count() FROM {table}") == [(0,)]
    # A server without ClickHouse's JSON parse of statements (18.16 here) serves none.
    runner = QueryRunner(lambda: open_reader(native_store, QueryLimits()), 30)
    try:
        with pytest.raises(QueryRefused, match="parser"):
            runner.rows("SELECT 1")
    finally:
        runner.close()
