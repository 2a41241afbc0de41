"""A ClickHouse server over the native protocol (clickhouse-driver), columnar inserts.

Connection failures become :class:`~pipeline.errors.ServiceUnavailable` (or
:class:`~pipeline.errors.SinkUnavailable` for inserts) with host:port and the
cause on one line. clickhouse-driver keeps one socket; after a server restart
the first call on the stale socket fails, so each call retries once on a
fresh connection before giving up. Retrying an insert is safe only with a
``dedup_token`` (the server then drops the repeated block); without one a
retry after a lost acknowledgement could write the block twice, so inserts
without a token are not retried.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.errors import ServiceUnavailable, SinkUnavailable
from pipeline.store.base import QueryError, quote_ident, quote_table, row_count
from pipeline.store.url import NativeTarget

if TYPE_CHECKING:
    from pipeline.query import QueryLimits

T = TypeVar("T")
_PLACEHOLDER = re.compile(r"\{(\w+):[^{}]+\}")
#: Seconds to wait for a TCP connection before the server counts as down.
CONNECT_TIMEOUT = 5


def _network_errors() -> tuple[type[BaseException], ...]:
    from clickhouse_driver import errors

    return (errors.NetworkError, errors.SocketTimeoutError, EOFError, OSError, socket.timeout)


class NativeStore:
    """A :class:`~pipeline.store.base.Store` backed by ``clickhouse_driver.Client``."""

    def __init__(self, target: NativeTarget) -> None:
        from clickhouse_driver import Client

        # clickhouse-driver logs every failed connect with a full traceback;
        # our own error already says host:port and the cause in one line.
        logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)
        self.target = target
        self._client = Client.from_url(target.url)
        self._client.connection.connect_timeout = CONNECT_TIMEOUT
        self._lock = threading.Lock()

    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing."""
        self._call(lambda: self._client.execute(sql), retry=True)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query; ``params`` fill ``{name:Type}`` placeholders (substituted client-side)."""
        if params:
            sql = client_side_placeholders(sql)
        rows = self._call(lambda: self._client.execute(sql, dict(params or {})), retry=True)
        return [tuple(row) for row in rows]

    def insert(
        self,
        table: str,
        columns: Mapping[str, Sequence[Any]],
        dedup_token: str | None = None,
    ) -> int:
        """Send one columnar block; the token goes in as ``insert_deduplication_token``."""
        rows = row_count(columns)
        names = ", ".join(quote_ident(name) for name in columns)
        sql = f"INSERT INTO {quote_table(table)} ({names}) VALUES"
        data = [list(values) for values in columns.values()]
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else {}

        def send() -> int:
            written: int = self._client.execute(sql, data, columnar=True, settings=settings)
            return written

        try:
            written = self._call(send, retry=dedup_token is not None)
        except ServiceUnavailable as exc:
            raise SinkUnavailable(str(exc)) from None
        return written if isinstance(written, int) else rows

    def reader(self, limits: QueryLimits) -> NativeReader:
        """Dedicated read-only connections for user queries (see :class:`NativeReader`)."""
        return NativeReader(self.target, limits)

    def close(self) -> None:
        """Close the socket."""
        with self._lock:
            self._client.disconnect()

    def _call(self, fn: Callable[[], T], retry: bool) -> T:
        from clickhouse_driver import errors

        attempts = 2 if retry else 1
        for attempt in range(attempts):
            try:
                with self._lock:
                    return fn()
            except errors.ServerException as exc:
                raise QueryError(f"ClickHouse at {self._where()}: {_first_line(exc)}") from None
            except _network_errors() as exc:
                self._client.disconnect()
                if attempt + 1 == attempts:
                    raise ServiceUnavailable(
                        f"ClickHouse at {self._where()} unavailable: {_first_line(exc)}"
                    ) from None
        raise AssertionError("unreachable")

    def _where(self) -> str:
        return f"{self.target.host}:{self.target.port}"


def client_side_placeholders(sql: str) -> str:
    """Turn ClickHouse ``{name:Type}`` placeholders into clickhouse-driver's ``%(name)s``.

    Servers as old as 18.16 lack server-side parameters, so the driver escapes
    and substitutes the values; a literal ``%`` must then be doubled.

    >>> client_side_placeholders("SELECT 1 WHERE a = {a:String} AND b LIKE 'x%'")
    "SELECT 1 WHERE a = %(a)s AND b LIKE 'x%%'"
    """
    return _PLACEHOLDER.sub(r"%(\1)s", sql.replace("%", "%%"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class NativeReader:
    """A dedicated read-only connection for user queries, and one to kill them.

    The settings go with every statement of the connection, ``readonly=1`` among
    them: the server checks the statement's own ``SETTINGS`` against it and
    refuses any change, ``readonly=0`` included.
    """

    def __init__(self, target: NativeTarget, limits: QueryLimits) -> None:
        from clickhouse_driver import Client

        self.target = target
        self._client = Client.from_url(target.url)
        self._client.connection.connect_timeout = CONNECT_TIMEOUT
        self._client.settings.update(limits.session_settings())
        self._control = Client.from_url(target.url)
        self._control.connection.connect_timeout = CONNECT_TIMEOUT
        self._lock = threading.Lock()

    def rows(self, sql: str, query_id: str) -> list[tuple[Any, ...]]:
        """Rows of one statement run under ``query_id``."""
        with self._lock:
            rows = self._run(lambda: self._client.execute(sql, query_id=query_id))
        return [tuple(row) for row in rows]

    def kill(self, query_id: str) -> None:
        self._run(
            lambda: self._control.execute(
                "KILL QUERY WHERE query_id = %(id)s ASYNC", {"id": query_id}
            )
        )

    def close(self) -> None:
        with self._lock:
            self._client.disconnect()
        self._control.disconnect()

    def _run(self, fn: Callable[[], Any]) -> Any:
        from clickhouse_driver import errors

        where = f"{self.target.host}:{self.target.port}"
        try:
            return fn()
        except errors.ServerException as exc:
            raise QueryError(f"ClickHouse at {where}: {_first_line(exc)}") from None
        except _network_errors() as exc:
            self._client.disconnect()
            raise ServiceUnavailable(f"ClickHouse at {where} unavailable: {exc}") from None
