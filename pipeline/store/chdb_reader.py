"""A read-only chdb session beside the writing one, for the query endpoint.

Sessions on the same directory share one engine but keep their own settings,
and run concurrently from different threads (an insert on the store's session
took 17 ms while a query ran on another), so a user's statement never holds the
store's lock. Its settings are set once, ``readonly=1`` last: from then on the
session refuses any change of settings, a ``SETTINGS readonly=0`` clause included.

chdb takes no query id from Python; each statement starts with a comment naming
its id, which ``system.processes`` keeps, and :meth:`ChdbReader.kill` finds it
there from a second session (the first is busy running it).

chdb 4.4 keeps the leftovers of a statement that failed mid-result (a result
limit, a timeout) in its session: the next ``ArrowTable`` result on it fails
("Message metadata too long"). A failed statement therefore gets its session
replaced (~50 ms).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pipeline.errors import ServiceUnavailable
from pipeline.query import QueryLimits
from pipeline.store.base import QueryError, quote_ident

#: Tag of the reader's statements in system.processes.
MARKER = "spanstream-query-"


class ChdbReader:
    """Two readonly sessions on ``path``: one runs statements, the other kills them."""

    def __init__(self, path: Path, database: str | None, limits: QueryLimits) -> None:
        from chdb import session

        from pipeline.store.chdb_store import _register, _unregister

        _register(path)
        self._unregister = lambda: _unregister(path)
        self._open = lambda: _readonly_session(session.Session(str(path)), database, limits)
        try:
            self._session = self._open()
            self._control = self._open()
        except Exception as exc:
            self._unregister()
            raise ServiceUnavailable(f"cannot open a read-only chdb session: {exc}") from None
        self._lock = threading.Lock()

    def rows(self, sql: str, query_id: str) -> list[tuple[Any, ...]]:
        """Rows of one statement, tagged with ``query_id``."""
        with self._lock:
            try:
                table = self._session.query(f"/* {MARKER}{query_id} */ {sql}", "ArrowTable")
            except Exception as exc:
                self._session.close()
                self._session = self._open()
                raise QueryError(f"chdb: {_first_line(exc)}") from None
        columns = [col.to_pylist(maps_as_pydicts="strict") for col in table.columns]
        return list(zip(*columns, strict=True))

    def kill(self, query_id: str) -> None:
        """Cancel the statement tagged ``query_id`` (ASYNC: it returns within ~0.1 s)."""
        # The tag is split in the KILL statement's text so it does not match itself.
        where = f"position(query, concat('{MARKER}', '{query_id:s}')) > 0"
        if not query_id.isalnum():
            raise ValueError(f"bad query id {query_id!r}")
        try:
            self._control.query(f"KILL QUERY WHERE {where} ASYNC", "CSV")
        except Exception as exc:
            raise QueryError(f"chdb: cannot kill query {query_id}: {_first_line(exc)}") from None

    def close(self) -> None:
        with self._lock:
            self._session.close()
            self._control.close()
        self._unregister()


def _readonly_session(session: Any, database: str | None, limits: QueryLimits) -> Any:
    if database:
        session.query(f"USE {quote_ident(database)}")
    for name, value in limits.session_settings().items():
        session.query(f"SET {name} = {_value(value)}")
    return session


def _value(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
