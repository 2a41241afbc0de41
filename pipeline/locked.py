"""A store shared by the ingest thread and the Faust event loop, one call at a time.

chdb runs ClickHouse inside this process and one session must not be driven
from two threads at once; the native driver's connection is not thread-safe
either. A lock around each call is enough: calls are batch inserts and small
queries.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.store.base import Store, accepts_arrow


class LockedStore:
    """Serializes every call to the wrapped store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.accepts_arrow = accepts_arrow(store)

    def execute(self, sql: str) -> None:
        with self._lock:
            self._store.execute(sql)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._store.query(sql, params)

    def insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], dedup_token: str | None = None
    ) -> int:
        with self._lock:
            return self._store.insert(table, columns, dedup_token)

    def reader(self, limits: Any) -> Any:
        """The wrapped store's read-only session: it has its own connection, not this lock."""
        from pipeline.query import open_reader

        return open_reader(self._store, limits)

    def close(self) -> None:
        with self._lock:
            self._store.close()
