"""The one interface every ClickHouse backend implements.

Callers (sinks, migrations, the query endpoint) depend on :class:`Store` only,
so the embedded chdb backend and a real server behind clickhouse-driver are
interchangeable. Inserts are columnar: one sequence per column, all the same
length, which is what both backends move fastest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pipeline.errors import SpanstreamError


class QueryError(SpanstreamError):
    """ClickHouse rejected a statement (syntax, unknown table, type mismatch)."""


class Store(Protocol):
    """A ClickHouse connection: DDL, queries and columnar batch inserts."""

    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing (DDL, ``INSERT ... SELECT``)."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return its rows; ``params`` fill ``{name:Type}`` placeholders."""

    def insert(
        self,
        table: str,
        columns: Mapping[str, Sequence[Any]],
        dedup_token: str | None = None,
    ) -> int:
        """Insert one block column by column and return the number of rows written.

        A retried call with the same ``dedup_token`` is a no-op on tables that
        keep a deduplication window (see ``schemas/clickhouse``).
        """

    def close(self) -> None:
        """Release the connection; the store is unusable afterwards."""


def accepts_arrow(store: object) -> bool:
    """True if ``store.insert`` takes pyarrow arrays as columns (chdb), not only lists.

    A store says so with an ``accepts_arrow`` attribute; wrappers pass their
    inner store's on. Any other store gets Python lists.
    """
    return bool(getattr(store, "accepts_arrow", False))


def row_count(columns: Mapping[str, Sequence[Any]]) -> int:
    """The common length of the columns of a batch.

    >>> row_count({"a": [1, 2], "b": ["x", "y"]})
    2
    >>> row_count({"a": [1, 2], "b": ["x"]})
    Traceback (most recent call last):
    ...
    ValueError: columns differ in length: {'a': 2, 'b': 1}
    """
    lengths = {name: len(values) for name, values in columns.items()}
    if not lengths:
        raise ValueError("an insert needs at least one column")
    if len(set(lengths.values())) != 1:
        raise ValueError(f"columns differ in length: {lengths}")
    return next(iter(lengths.values()))


def quote_ident(name: str) -> str:
    """Backquote an identifier (``Events.Name`` stays one name).

    >>> quote_ident("Events.Name")
    '`Events.Name`'
    >>> quote_ident("odd`name")
    '`odd\\\\`name`'
    """
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_table(table: str) -> str:
    """Quote ``table`` or ``db.table`` for SQL.

    >>> quote_table("db.otel_traces")
    '`db`.`otel_traces`'
    """
    return ".".join(quote_ident(part) for part in table.split(".", 1))
