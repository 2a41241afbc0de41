"""``spanstream query SQL``: read the store, through the running worker when it holds chdb."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pipeline.errors import ServiceUnavailable, SpanstreamError
from pipeline.printable import printable
from pipeline.settings import load_settings


def register(subparsers: Any) -> None:
    """Add the ``query`` subcommand."""
    parser = subparsers.add_parser(
        "query",
        help="run a read-only SQL query on the store (via the worker if one is running)",
        description=(
            "A running worker holds the embedded chdb directory, so by default the query goes "
            "to its /query endpoint (SPANSTREAM_WEB_PORT, 6066). With --direct the store is "
            "opened here (only when no worker holds it). Output: one JSON array per row."
        ),
    )
    parser.add_argument(
        "sql", help='e.g. "SELECT ServiceName, count() FROM otel_traces GROUP BY 1"'
    )
    parser.add_argument("--direct", action="store_true", help="open the store in this process")
    parser.add_argument("--url", help="store URL for --direct (default: SPANSTREAM_CLICKHOUSE)")
    parser.add_argument("--web-port", type=int, help="the worker's web port (default 6066)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print each row as JSON."""
    settings = load_settings(clickhouse_url=args.url, web_port=args.web_port)
    rows = (
        _direct(args.sql, settings.clickhouse_url)
        if args.direct
        else _via_worker(args.sql, settings.web_port)
    )
    for row in rows:
        # json escapes C0 but not DEL, C1 or bidi controls: those from stored data too.
        print(printable(json.dumps(row, ensure_ascii=False)))
    return 0


def _direct(sql: str, url: Any) -> list[list[Any]]:
    from pipeline.query import run_readonly
    from pipeline.store import open_store

    store = open_store(url)
    try:
        return run_readonly(store, sql)
    finally:
        store.close()


def _via_worker(sql: str, port: int) -> list[list[Any]]:
    url = f"http://127.0.0.1:{port}/query?" + urllib.parse.urlencode({"sql": sql})
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        raise SpanstreamError(body.get("error", f"worker answered HTTP {exc.code}")) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnavailable(
            f"no worker answers on 127.0.0.1:{port} ({exc}); use --direct when none runs"
        ) from None
    rows: list[list[Any]] = body["rows"]
    return rows
