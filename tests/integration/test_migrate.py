"""``spanstream migrate`` against embedded chdb, and CLI error lines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import MigrationError
from pipeline.local.process import free_port
from pipeline.migrate import HISTORY_TABLE, SCHEMA_DIR, load_migrations, migrate
from pipeline.store import open_store

pytestmark = pytest.mark.integration


def test_migrate_applies_all_then_is_a_noop(
    chdb_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    total = len(load_migrations())
    assert main(["migrate", "--url", chdb_url, "--dry-run"]) == 0
    assert f"would apply {total} of {total}" in capsys.readouterr().out
    assert main(["migrate", "--url", chdb_url]) == 0
    assert f"applied {total} of {total} migrations: 0001_otel_traces.sql" in capsys.readouterr().out
    assert main(["migrate", "--url", chdb_url]) == 0
    assert capsys.readouterr().out.strip() == f"schema up to date ({total} migrations)"
    store = open_store(chdb_url)
    try:
        rows = store.query(
            f"SELECT version, name, length(checksum) FROM {HISTORY_TABLE} ORDER BY version"
        )
        tables = {r[0] for r in store.query("SHOW TABLES")}
    finally:
        store.close()
    assert rows == [(m.version, m.name, 64) for m in load_migrations()]
    assert {
        "otel_traces",
        "otel_traces_trace_id_ts",
        "otel_traces_trace_id_ts_mv",
        "spanstream_red_metrics",
        "spanstream_anomalies",
        "spanstream_slo_burn",
    } <= tables


def test_edited_migration_is_an_error_naming_the_file(chdb_url: str, tmp_path: Path) -> None:
    schema = tmp_path / "schema"
    shutil.copytree(SCHEMA_DIR, schema)
    store = open_store(chdb_url)
    try:
        migrate(store, schema)
        edited = schema / "0003_spanstream_red_metrics.sql"
        edited.write_text(edited.read_text() + "\n-- harmless looking edit\n")
        with pytest.raises(MigrationError, match=r"0003_spanstream_red_metrics\.sql was edited"):
            migrate(store, schema)
    finally:
        store.close()


def test_ttl_days_renders_a_ttl_clause(chdb_url: str) -> None:
    store = open_store(chdb_url)
    try:
        migrate(store, ttl_days=14)
        [(ddl,)] = store.query(
            "SELECT create_table_query FROM system.tables "
            "WHERE database = currentDatabase() AND name = 'otel_traces'"
        )
    finally:
        store.close()
    assert "TTL toDate(Timestamp) + toIntervalDay(14)" in ddl


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://u@h/db", "SPANSTREAM_CLICKHOUSE='mysql://u@h/db'"),
        ("clickhouse://u:hunter2@h/db", "--url='clickhouse://u:***@h/db': a password on"),
        ("chdb:", "missing directory"),
    ],
)
def test_cli_bad_url_is_one_line(
    url: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--url", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spanstream: error: ")
    assert fragment in err
    assert "\n" not in err
    assert "hunter2" not in err


def test_cli_unreachable_server_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("SPANSTREAM_CLICKHOUSE_PASSWORD", "hunter2")
    assert main(["migrate", "--url", f"clickhouse://u@127.0.0.1:{port}/db"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"spanstream: error: ClickHouse at 127.0.0.1:{port} unavailable: ")
    assert "Connection refused" in err
    assert "\n" not in err
    assert "hunter2" not in err
