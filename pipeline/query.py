"""Read-only SQL against the store, for users while a worker holds the embedded chdb directory.

chdb allows one process per data directory, so ``spanstream query`` asks the
running worker (``GET /query?sql=...`` on its web port) and the worker runs
the statement here. Reading is enforced by the engine, not by keywords:

* statements run on their own session (chdb) or connection (a server) whose
  settings are fixed at open: ``readonly=1`` last, so no statement can change a
  setting (not even with a ``SETTINGS`` clause), and limits on time, result
  size, memory and threads (:class:`QueryLimits`, ``SPANSTREAM_QUERY_*``);
* that session is not the store's: a query never waits for, or holds, the lock
  ingestion and window closes use;
* the engine's own parser canonicalises the statement (one statement, no
  comments) and :mod:`pipeline.query_check` checks its syntax tree;
* a statement past its deadline, or running when the worker stops, is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.errors import SpanstreamError
from pipeline.query_check import QueryRefused, check_tree, sql_string
from pipeline.settings import Settings

__all__ = ["QueryBusy", "QueryLimits", "QueryRefused", "QueryRunner", "Reader"]

#: Statements that may wait behind the running one; more are answered 503 at once.
MAX_WAITING = 2
#: Seconds past the engine's own deadline before the worker kills a statement itself.
KILL_GRACE_SECONDS = 5.0


class QueryBusy(SpanstreamError):
    """Too many statements queued; the client should retry later."""


@dataclass(frozen=True)
class QueryLimits:
    """Limits of every statement on the read-only session (documented defaults in Settings)."""

    timeout_seconds: int = 30
    max_rows: int = 100_000
    max_bytes: int = 50_000_000
    max_memory_bytes: int = 500_000_000
    max_threads: int = 1

    @classmethod
    def of(cls, s: Settings) -> QueryLimits:
        return cls(
            s.query_timeout_seconds,
            s.query_max_rows,
            s.query_max_bytes,
            s.query_max_memory_bytes,
            s.query_max_threads,
        )

    def session_settings(self) -> dict[str, Any]:
        """The session's settings, ``readonly`` last: after it the session can change none.

        >>> list(QueryLimits().session_settings())[-1]
        'readonly'
        """
        return {
            "max_execution_time": self.timeout_seconds,
            "timeout_overflow_mode": "throw",
            "max_result_rows": self.max_rows,
            "max_result_bytes": self.max_bytes,
            "result_overflow_mode": "throw",
            "max_memory_usage": self.max_memory_bytes,
            "max_threads": self.max_threads,
            "readonly": 1,
        }


class Reader(Protocol):
    """A read-only session on the store (see ``Store.reader``)."""

    def rows(self, sql: str, query_id: str) -> list[tuple[Any, ...]]:
        """Run one statement tagged ``query_id`` (so :meth:`kill` can find it)."""

    def kill(self, query_id: str) -> None:
        """Stop the statement tagged ``query_id`` if it runs (from another thread)."""

    def close(self) -> None:
        """Release the session."""


def open_reader(store: Any, limits: QueryLimits) -> Reader:
    """The store's read-only session; stores without one cannot serve queries."""
    reader = getattr(store, "reader", None)
    if reader is None:
        raise QueryRefused(f"{type(store).__name__} has no read-only session")
    result: Reader = reader(limits)
    return result


class QueryRunner:
    """Runs user statements one at a time on a read-only session opened on first use."""

    def __init__(self, opener: Callable[[], Reader], timeout_seconds: float) -> None:
        self._opener = opener
        self._timeout = timeout_seconds
        self._reader: Reader | None = None
        self._lock = threading.Lock()
        self._running: str | None = None
        self._dropped: set[str] = set()
        self._closed = False
        self._waiting = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="query")

    def rows(self, sql: str, query_id: str | None = None) -> list[list[Any]]:
        """Check and run ``sql``; rows come back JSON-safe (datetimes as ISO strings)."""
        qid = query_id or uuid.uuid4().hex
        with self._lock:
            if self._closed or qid in self._dropped:
                raise QueryRefused("the query was cancelled")
            reader = self._open()
            self._running = qid
            try:
                statement = _checked(reader, sql, qid)
                result = reader.rows(statement, qid)
            finally:
                self._running = None
        return [[_json_safe(v) for v in row] for row in result]

    def body(self, sql: str, query_id: str) -> bytes:
        """The JSON response body (built on the query thread, never on the event loop)."""
        return json.dumps({"rows": self.rows(sql, query_id)}, ensure_ascii=False).encode()

    async def run(self, sql: str) -> bytes:
        """Run on the query thread; a statement past its deadline or cancelled is killed."""
        if self._waiting > MAX_WAITING:
            raise QueryBusy("too many queries waiting; retry later")
        qid = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        self._waiting += 1
        future = loop.run_in_executor(self._executor, self.body, sql, qid)
        future.add_done_callback(lambda _: self._done_waiting())
        deadline = (self._timeout + KILL_GRACE_SECONDS) * (MAX_WAITING + 1)
        try:
            return await asyncio.wait_for(asyncio.shield(future), deadline)
        except TimeoutError:
            self._drop(qid)
            raise QueryRefused(f"the query was killed after {deadline:.0f}s") from None
        except asyncio.CancelledError:  # client gone or worker stopping
            self._drop(qid)
            raise

    def _done_waiting(self) -> None:
        self._waiting -= 1

    def _drop(self, qid: str) -> None:
        """Never start ``qid``; kill it if it runs (on its own thread: the query's is busy)."""
        self._dropped.add(qid)
        threading.Thread(target=self._kill, args=(qid,), name="query-kill", daemon=True).start()

    def _kill(self, qid: str) -> None:
        reader = self._reader
        if reader is not None and self._running == qid:
            # It may have ended meanwhile, or the session be gone: nothing left to stop.
            with contextlib.suppress(SpanstreamError):
                reader.kill(qid)

    def close(self) -> None:
        """Kill the running statement, wait for the query thread, release the session."""
        self._closed = True
        running = self._running
        if running is not None:
            self._kill(running)
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _open(self) -> Reader:
        if self._reader is None:
            self._reader = self._opener()
        return self._reader


def _checked(reader: Reader, sql: str, qid: str) -> str:
    """The canonical text of ``sql`` (one statement, no comments), once its tree passes."""
    if not sql.strip():
        raise QueryRefused("empty query: pass one SELECT statement as ?sql=")
    probe = f"SELECT formatQuery({sql_string(sql)}) AS q, parseQueryToJSON(q)"
    try:
        ((statement, tree),) = reader.rows(probe, qid)
    except SpanstreamError as exc:
        raise QueryRefused(f"statement not accepted by ClickHouse's parser: {exc}") from None
    check_tree(json.loads(tree))
    return str(statement)


def run_readonly(store: Any, sql: str, limits: QueryLimits | None = None) -> list[list[Any]]:
    """Run one reading statement on a read-only session of ``store`` (``query --direct``)."""
    runner = QueryRunner(lambda: open_reader(store, limits or QueryLimits()), 0)
    try:
        return runner.rows(sql)
    finally:
        runner.close()


def _json_safe(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, tuple | list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return value
