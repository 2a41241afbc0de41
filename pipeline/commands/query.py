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
from pipeline.settings import Settings, load_settings


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
    rows = _direct(args.sql, settings) if args.direct else _via_worker(args.sql, settings)
    for row in rows:
        # json escapes C0 but not DEL, C1 or bidi controls: those from stored data too.
        print(printable(json.dumps(row, ensure_ascii=False)))
    return 0


def _direct(sql: str, settings: Settings) -> list[list[Any]]:
    from pipeline.query import QueryLimits, run_readonly
    from pipeline.store import open_store

    store = open_store(settings.clickhouse_url)
    try:
        return run_readonly(store, sql, QueryLimits.of(settings))
    finally:
        store.close()


def worker_request(sql: str, settings: Settings) -> urllib.request.Request:
    """GET /query on the worker's web port, with the bearer token when one is set.

    >>> from pipeline.settings import Settings, load_settings
    >>> r = worker_request("SELECT 1", load_settings({"SPANSTREAM_WEB_TOKEN": "t0k"}))
    >>> r.full_url, r.get_header("Authorization")
    ('http://127.0.0.1:6066/query?sql=SELECT+1', 'Bearer t0k')
    """
    host = settings.web_bind if settings.web_bind not in ("0.0.0.0", "::", "") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{settings.web_port}/query?" + urllib.parse.urlencode({"sql": sql})
    token = settings.web_token.get_secret_value()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return urllib.request.Request(url, headers=headers)


def _via_worker(sql: str, settings: Settings) -> list[list[Any]]:
    port = settings.web_port
    request = worker_request(sql, settings)
    try:
        # The worker kills a statement after SPANSTREAM_QUERY_TIMEOUT_SECONDS; wait a bit longer.
        wait = settings.query_timeout_seconds + 30
        with urllib.request.urlopen(request, timeout=wait) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        raise SpanstreamError(body.get("error", f"worker answered HTTP {exc.code}")) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnavailable(
            f"no worker answers on port {port} ({exc}); use --direct when none runs"
        ) from None
    rows: list[list[Any]] = body["rows"]
    return rows
