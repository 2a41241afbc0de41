"""Embedded ClickHouse (chdb, ClickHouse 26.x in-process) on a local directory.

Limits of chdb found here (chdb 4.4 / engine 26.9), which shape how it is used:

* One data directory per process: while any session is open, opening another
  path fails ("EmbeddedServer already initialized with path ..."); several
  sessions on the *same* path share one engine. Opening costs ~50 ms.
* One process per directory: a second process opening a directory in use
  fails at start ("Error initializing EmbeddedServer"). So only the worker
  writes; other processes must ask the worker (its read-only query endpoint).

Inserts go through ``INSERT ... SELECT * FROM Python(arrow_table)``: chdb
reads the local pyarrow Table by name from the calling frame, columnar, with
no SQL text per row. ``insert_deduplicate`` is already 1 by default in chdb;
it is still set explicitly with the token so behaviour does not hinge on a
default.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ServiceUnavailable, SinkUnavailable
from pipeline.store.arrow import to_arrow
from pipeline.store.base import QueryError, quote_ident, quote_table, row_count
from pipeline.store.url import ChdbTarget

if TYPE_CHECKING:
    from pipeline.query import QueryLimits
    from pipeline.store.chdb_reader import ChdbReader

_open_lock = threading.Lock()
#: Directory -> open stores in this process (chdb allows one directory per process).
_open_paths: dict[Path, int] = {}


def _register(path: Path) -> None:
    with _open_lock:
        other = next((p for p in _open_paths if p != path), None)
        if other is not None:
            raise ServiceUnavailable(
                f"chdb is already open on {other} in this process; "
                f"cannot also open {path} (chdb allows one directory per process)"
            )
        _open_paths[path] = _open_paths.get(path, 0) + 1


def _unregister(path: Path) -> None:
    with _open_lock:
        _open_paths[path] -= 1
        if _open_paths[path] == 0:
            del _open_paths[path]


class ChdbStore:
    """A :class:`~pipeline.store.base.Store` on an embedded chdb Session."""

    #: ``insert`` takes pyarrow arrays as they are (see :func:`~pipeline.store.base.accepts_arrow`).
    accepts_arrow = True

    def __init__(self, target: ChdbTarget) -> None:
        from chdb import session

        self.path = Path(target.path).resolve()
        self.database = target.database
        _register(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._session = session.Session(str(self.path))
        except Exception as exc:
            _unregister(self.path)
            raise ServiceUnavailable(
                f"cannot open chdb directory {self.path}: {_first_line(exc)} "
                "(is another process using it? chdb allows one process per directory)"
            ) from None
        self._lock = threading.Lock()
        self._types: dict[str, dict[str, str]] = {}
        self._closed = False
        if self.database:
            self.execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(self.database)}")
            self.execute(f"USE {quote_ident(self.database)}")

    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing."""
        self._run(sql, "CSV")

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query; Map values come back as dicts, like clickhouse-driver's."""
        table = self._run(sql, "ArrowTable", params)
        columns = [col.to_pylist(maps_as_pydicts="strict") for col in table.columns]
        return list(zip(*columns, strict=True))

    def insert(
        self,
        table: str,
        columns: Mapping[str, Sequence[Any]],
        dedup_token: str | None = None,
    ) -> int:
        """Insert one block from a pyarrow Table through ``Python()``."""
        rows = row_count(columns)
        # Not unused: chdb's Python() finds the table by this name in the calling frame.
        arrow_table = to_arrow(columns, self._column_types(table))  # noqa: F841
        names = ", ".join(quote_ident(name) for name in columns)
        sql = f"INSERT INTO {quote_table(table)} ({names}) SELECT * FROM Python(arrow_table)"
        if dedup_token is not None:
            token = dedup_token.replace("\\", "\\\\").replace("'", "\\'")
            sql += f" SETTINGS insert_deduplicate = 1, insert_deduplication_token = '{token}'"
        try:
            with self._lock:
                self._session.query(sql, "CSV")
        except Exception as exc:
            raise SinkUnavailable(f"chdb insert into {table} failed: {_first_line(exc)}") from None
        return rows

    def reader(self, limits: QueryLimits) -> ChdbReader:
        """A read-only session on this directory for user queries (see :mod:`.chdb_reader`)."""
        from pipeline.store.chdb_reader import ChdbReader

        return ChdbReader(self.path, self.database, limits)

    def close(self) -> None:
        """Close the session and free the directory for this process."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._session.close()
        _unregister(self.path)

    def _column_types(self, table: str) -> dict[str, str]:
        if table not in self._types:
            db, _, name = table.rpartition(".")
            rows = self.query(
                "SELECT name, type FROM system.columns WHERE database = "
                + ("{db:String}" if db else "currentDatabase()")
                + " AND table = {table:String}",
                {"db": db, "table": name} if db else {"table": name},
            )
            if not rows:
                raise SinkUnavailable(
                    f"chdb: table {table} does not exist (run spanstream migrate)"
                )
            self._types[table] = {str(n): str(t) for n, t in rows}
        return self._types[table]

    def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None = None) -> Any:
        if self._closed:
            raise ServiceUnavailable(f"chdb store on {self.path} is closed")
        try:
            with self._lock:
                return self._session.query(sql, fmt, params=_chdb_params(params))
        except Exception as exc:
            raise _query_error(exc) from None


def _chdb_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters as chdb needs them: lists and tuples as ClickHouse literals.

    chdb renders a Python list as ``[a,b]`` without quotes, which an
    ``Array(String)`` parameter cannot parse; scalars it passes correctly.

    >>> _chdb_params({"ids": ["ab", "cd"], "n": 3})
    {'ids': "['ab','cd']", 'n': 3}
    """
    if not params:
        return None
    return {k: _literal(v) if isinstance(v, list | tuple) else v for k, v in params.items()}


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _query_error(exc: Exception) -> QueryError:
    """chdb raises one error type for everything; wrap it with a one-line message."""
    return QueryError(f"chdb: {_first_line(exc)}")
