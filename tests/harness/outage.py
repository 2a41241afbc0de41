"""A ClickHouse outage on demand: a store that refuses every call while a switch file exists.

The embedded chdb store lives inside the worker process, so it cannot be
stopped from outside the way a server can. :class:`OutageStore` wraps the
real store and, while ``switch`` exists, fails each call the way the native
backend fails when its server is down: inserts raise
:class:`~pipeline.errors.SinkUnavailable`, statements and queries
:class:`~pipeline.errors.ServiceUnavailable`. Removing the file ends the
outage; nothing else about the store changes.

``python -m tests.harness.outage worker ...`` runs ``spanstream`` with
every store it opens wrapped, the switch path taken from
``SPANSTREAM_OUTAGE_SWITCH``:

>>> import tempfile
>>> from pathlib import Path
>>> class Rows:
...     def query(self, sql, params=None): return [(1,)]
>>> switch = Path(tempfile.mkdtemp()) / "down"
>>> store = OutageStore(Rows(), switch)
>>> store.query("SELECT 1")
[(1,)]
>>> switch.touch()
>>> store.query("SELECT 1")
Traceback (most recent call last):
...
pipeline.errors.ServiceUnavailable: ClickHouse outage (simulated while ... exists)
>>> store.refused
1
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, ServiceUnavailable, SinkUnavailable
from pipeline.query import QueryLimits, Reader, open_reader
from pipeline.store.base import Store, accepts_arrow

SWITCH_ENV = "SPANSTREAM_OUTAGE_SWITCH"


class OutageStore:
    """A :class:`~pipeline.store.base.Store` that is down while ``switch`` exists."""

    def __init__(self, inner: Store, switch: Path) -> None:
        self.inner = inner
        self.switch = switch
        self.refused = 0
        self.accepts_arrow = accepts_arrow(inner)

    def _down(self) -> str | None:
        if not self.switch.exists():
            return None
        self.refused += 1
        return f"ClickHouse outage (simulated while {self.switch} exists)"

    def execute(self, sql: str) -> None:
        if message := self._down():
            raise ServiceUnavailable(message)
        self.inner.execute(sql)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if message := self._down():
            raise ServiceUnavailable(message)
        return self.inner.query(sql, params)

    def insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], dedup_token: str | None = None
    ) -> int:
        if message := self._down():
            raise SinkUnavailable(message, retry_after=1.0)
        return self.inner.insert(table, columns, dedup_token)

    def reader(self, limits: QueryLimits) -> Reader:
        """The inner store's read-only session (``/query``), down with the store."""
        return _OutageReader(open_reader(self.inner, limits), self)

    def close(self) -> None:
        self.inner.close()


class _OutageReader:
    """A read-only session that refuses statements while its store is down."""

    def __init__(self, inner: Reader, store: OutageStore) -> None:
        self.inner = inner
        self.store = store

    def rows(self, sql: str, query_id: str) -> list[tuple[Any, ...]]:
        if message := self.store._down():
            raise ServiceUnavailable(message)
        return self.inner.rows(sql, query_id)

    def kill(self, query_id: str) -> None:
        self.inner.kill(query_id)

    def close(self) -> None:
        self.inner.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``spanstream`` with each opened store wrapped in an :class:`OutageStore`."""
    raw = os.environ.get(SWITCH_ENV, "")
    if not raw:
        raise ConfigError(f"{SWITCH_ENV} is not set: name the file whose presence means 'down'")
    import pipeline.store as stores
    from pipeline.cli import main as cli_main

    real_open = stores.open_store

    def open_wrapped(url: Any) -> Store:
        return OutageStore(real_open(url), Path(raw))

    stores.open_store = open_wrapped
    return cli_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
