"""The query endpoint's statements against a real chdb store: every attack of issue #12 fails.

Each attack ran before the fix (the endpoint checked the first keyword only);
each test asserts both the refusal and the absence of the effect (no file
read or written, no row inserted, no HTTP request made, no lock held).
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import SpanstreamError
from pipeline.locked import LockedStore
from pipeline.query import QueryLimits, QueryRunner, open_reader, run_readonly
from pipeline.store import Store
from tests.faults.harness import wait_until

REFUSED = SpanstreamError  # QueryRefused (our check) or QueryError (the engine's)


def count(store: Store) -> int:
    return int(store.query("SELECT count() FROM otel_traces")[0][0])


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM file('/proc/self/environ', 'LineAsString')",
        "SELECT file('/etc/hostname')",
        "SELECT 'root' IN file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM (SELECT * FROM file('/etc/passwd', 'LineAsString'))",
        "SELECT * FROM Python(store)",
        "SELECT * FROM executable('id', 'TSV', 'x String')",
        "SELECT * FROM filesystem('/etc')",
    ],
)
def test_files_and_process_objects_are_not_read(chdb_store: Store, sql: str) -> None:
    with pytest.raises(REFUSED):
        run_readonly(chdb_store, sql)


@pytest.mark.parametrize("mode", ["", " APPEND", " TRUNCATE"])
def test_into_outfile_writes_nothing(chdb_store: Store, tmp_path: Path, mode: str) -> None:
    target = tmp_path / "out.tsv"
    if mode:
        target.write_text("before\n")
    with pytest.raises(REFUSED):
        run_readonly(chdb_store, f"SELECT 'x' INTO OUTFILE '{target}'{mode} FORMAT TSV")
    assert (target.read_text() if target.exists() else None) == ("before\n" if mode else None)


def test_explain_into_outfile_writes_nothing(chdb_store: Store, tmp_path: Path) -> None:
    target = tmp_path / "plan.txt"
    with pytest.raises(REFUSED):
        run_readonly(chdb_store, f"EXPLAIN SELECT 1 INTO OUTFILE '{target}'")
    assert not target.exists()


@pytest.mark.parametrize(
    "sql",
    [
        "WITH x AS (SELECT 1) INSERT INTO otel_traces (TraceId) SELECT 'a'",
        "WITH 1 AS x INSERT INTO otel_traces (TraceId) SELECT 'a'",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT 1 SETTINGS readonly = 1, readonly = 0",
        "SELECT 1; INSERT INTO otel_traces (TraceId) VALUES ('a')",
    ],
)
def test_writes_are_refused(chdb_store: Store, sql: str) -> None:
    with pytest.raises(REFUSED):
        run_readonly(chdb_store, sql)
    assert count(chdb_store) == 0


def test_insert_into_function_file_writes_nothing(chdb_store: Store, tmp_path: Path) -> None:
    target = tmp_path / "written.tsv"
    with pytest.raises(REFUSED):
        run_readonly(
            chdb_store, f"WITH 1 AS x INSERT INTO FUNCTION file('{target}', 'TSV') SELECT 1"
        )
    assert not target.exists()


@pytest.fixture
def http_hits() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server recording the paths asked of it (the SSRF target)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"secret\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("fn", ["url('{u}/x', 'LineAsString')", "s3('{u}/b/k', 'LineAsString')"])
def test_no_server_side_requests(chdb_store: Store, http_hits: Any, fn: str) -> None:
    base, hits = http_hits
    with pytest.raises(REFUSED):
        run_readonly(chdb_store, "SELECT * FROM " + fn.format(u=base))
    assert hits == []


def test_reading_statements_still_work(chdb_store: Store) -> None:
    assert run_readonly(chdb_store, "SELECT count() FROM otel_traces") == [[0]]
    assert run_readonly(chdb_store, "select 'a;b' -- a comment\n") == [["a;b"]]
    assert ["otel_traces"] in run_readonly(chdb_store, "SHOW TABLES")
    assert run_readonly(chdb_store, "EXPLAIN SELECT 1")
    assert run_readonly(chdb_store, "SELECT sum(number) FROM numbers(10)") == [[45]]


def test_a_large_result_is_refused_not_materialised(chdb_store: Store) -> None:
    start = time.monotonic()
    with pytest.raises(REFUSED, match="max rows"):
        run_readonly(chdb_store, "SELECT number, toString(number) FROM numbers(10000000)")
    assert time.monotonic() - start < 5


def test_an_endless_query_is_stopped_at_its_timeout(chdb_store: Store) -> None:
    start = time.monotonic()
    with pytest.raises(REFUSED, match="Timeout"):
        run_readonly(
            chdb_store, "SELECT count() FROM system.numbers", QueryLimits(timeout_seconds=1)
        )
    assert time.monotonic() - start < 5


def running(store: Store) -> bool:
    sql = (
        "SELECT count() FROM system.processes "
        "WHERE query LIKE '%system.numbers%' AND query NOT LIKE '%processes%'"
    )
    return int(store.query(sql)[0][0]) > 0


def test_a_query_holds_no_store_lock_and_is_killed_on_close(chdb_store: Store) -> None:
    store = LockedStore(chdb_store)
    limits = QueryLimits(timeout_seconds=120)
    runner = QueryRunner(lambda: open_reader(store, limits), limits.timeout_seconds)
    outcome: list[BaseException] = []

    def endless() -> None:
        try:
            runner.rows("SELECT count() FROM system.numbers")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=endless)
    thread.start()
    wait_until(lambda: running(store), 10, "the query to run", poll_s=0.02)
    started = time.monotonic()
    store.insert("spanstream_anomalies", {"AlertId": ["a1"]})  # ingestion goes on beside it
    assert time.monotonic() - started < 1
    started = time.monotonic()
    runner.close()  # the worker stopping
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert outcome and "cancelled" in str(outcome[0]).lower()
    assert not running(store)


def test_a_statement_failing_mid_result_breaks_neither_the_store_nor_the_next_query(
    chdb_store: Store,
) -> None:
    # chdb keeps a failed result's leftovers in its session: the next Arrow result on
    # that session failed ("Message metadata too long"), the store's own queries included.
    limits = QueryLimits()
    runner = QueryRunner(lambda: open_reader(chdb_store, limits), limits.timeout_seconds)
    try:
        with pytest.raises(REFUSED):
            runner.rows("SELECT throwIf(number = 200000) FROM numbers(1000000)")
        assert chdb_store.query("SELECT 1") == [(1,)]
        assert runner.rows("SELECT 1") == [[1]]
    finally:
        runner.close()
