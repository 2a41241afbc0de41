"""Read-only SQL against the store, for users while a worker holds the embedded chdb directory.

chdb allows one process per data directory, so ``spanstream query`` asks the
running worker (``GET /query?sql=...`` on its web port) and the worker runs
the statement here. Only reading statements pass.

>>> check_readonly("SELECT count() FROM otel_traces")
>>> check_readonly("DROP TABLE otel_traces")
Traceback (most recent call last):
...
pipeline.query.QueryRefused: only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN and EXISTS are allowed
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline.errors import SpanstreamError
from pipeline.store.base import Store

_READING = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")


class QueryRefused(SpanstreamError):
    """The statement would change data or schema; the query endpoint only reads."""

    exit_code = 2


def check_readonly(sql: str) -> None:
    """Raise QueryRefused unless ``sql`` is one reading statement."""
    text = sql.strip().rstrip(";")
    first = text.split(None, 1)[0].upper() if text else ""
    if first not in _READING:
        raise QueryRefused("only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN and EXISTS are allowed")
    if ";" in text:
        raise QueryRefused("one statement at a time")


def run_readonly(store: Store, sql: str) -> list[list[Any]]:
    """Run a reading statement; rows come back JSON-safe (datetimes as ISO strings)."""
    check_readonly(sql)
    return [[_json_safe(v) for v in row] for row in store.query(sql)]


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
