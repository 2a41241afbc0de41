"""Migration planning, checksums, rendering and splitting (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import MigrationError
from pipeline.migrate import (
    SCHEMA_DIR,
    Applied,
    Migration,
    load_migrations,
    plan,
    render,
    split_statements,
)

M1 = Migration(1, "one", "0001_one.sql", "CREATE TABLE a (x UInt8) ENGINE = Log;\n")
M2 = Migration(2, "two", "0002_two.sql", "CREATE TABLE b (x UInt8) ENGINE = Log;\n")
M3 = Migration(3, "three", "0003_three.sql", "SELECT 1;\n")


def applied(*migrations: Migration) -> list[Applied]:
    return [Applied(m.version, m.name, m.checksum) for m in migrations]


@pytest.mark.parametrize(
    ("done", "pending"),
    [
        ([], [1, 2, 3]),
        ([M1], [2, 3]),
        ([M1, M2], [3]),
        ([M1, M2, M3], []),
    ],
)
def test_plan_returns_pending_in_order(done: list[Migration], pending: list[int]) -> None:
    assert [m.version for m in plan([M1, M2, M3], applied(*done))] == pending


def test_edited_migration_names_the_file() -> None:
    edited = Migration(2, "two", "0002_two.sql", M2.sql + "-- tweak\n")
    with pytest.raises(MigrationError, match=r"0002_two\.sql was edited"):
        plan([M1, edited, M3], applied(M1, M2))


def test_missing_applied_file_is_an_error() -> None:
    with pytest.raises(MigrationError, match=r"0002_two\.sql was applied but is missing"):
        plan([M1, M3], applied(M1, M2))


def test_out_of_order_file_is_an_error() -> None:
    with pytest.raises(MigrationError, match=r"0002_two\.sql older than applied version 0003"):
        plan([M1, M2, M3], applied(M1, M3))


def test_checksum_covers_raw_text_only() -> None:
    same = Migration(9, "other", "0009_other.sql", M1.sql)
    assert same.checksum == M1.checksum
    assert M1.checksum != M2.checksum
    assert len(M1.checksum) == 64


@pytest.mark.parametrize(
    ("ttl_days", "expected"),
    [
        (0, "ORDER BY x\n\nSETTINGS a = 1"),
        (30, "ORDER BY x\nTTL toDate(Timestamp) + toIntervalDay(30)\nSETTINGS a = 1"),
    ],
)
def test_render_ttl(ttl_days: int, expected: str) -> None:
    raw = "ORDER BY x\n{{TTL toDate(Timestamp)}}\nSETTINGS a = 1"
    assert render(raw, ttl_days) == expected


def test_render_rejects_negative_ttl() -> None:
    with pytest.raises(MigrationError, match="ttl_days=-1"):
        render("x", -1)


def test_split_statements_skips_comments_and_keeps_multiline() -> None:
    sql = "-- header; with a semicolon;\nCREATE TABLE t (\n  a UInt8 -- why\n) ENGINE = Log;\n"
    sql += "\nCREATE VIEW v AS SELECT 1;\n"
    assert split_statements(sql) == [
        "CREATE TABLE t (\n  a UInt8 -- why\n) ENGINE = Log",
        "CREATE VIEW v AS SELECT 1",
    ]


def test_load_migrations_orders_and_validates(tmp_path: Path) -> None:
    (tmp_path / "0002_b.sql").write_text("SELECT 2;")
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    assert [m.filename for m in load_migrations(tmp_path)] == ["0001_a.sql", "0002_b.sql"]
    (tmp_path / "0002_c.sql").write_text("SELECT 3;")
    with pytest.raises(MigrationError, match="version 2 also used by"):
        load_migrations(tmp_path)


def test_load_migrations_rejects_bad_names(tmp_path: Path) -> None:
    (tmp_path / "1_a.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lower_snake"):
        load_migrations(tmp_path)


def test_repository_migrations_are_numbered_from_one_with_headers() -> None:
    migrations = load_migrations(SCHEMA_DIR)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.sql.startswith("-- ") for m in migrations)
    assert migrations[0].filename == "0001_otel_traces.sql"
