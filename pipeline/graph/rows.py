"""Columns of the service graph tables for drained increments (pure).

``spanstream_service_graph``: one row per (window, edge) of an increment;
``spanstream_self_time``: one row per (window, service, operation). Schemas:
``schemas/clickhouse/0005_spanstream_service_graph.sql``.

>>> from pipeline.graph.edges import EdgeKey, EdgeStats, GraphWindow
>>> w = GraphWindow(60_000_000_000, 120_000_000_000)
>>> w.edges[EdgeKey("a", "b")] = EdgeStats()
>>> w.edges[EdgeKey("a", "b")].add(2_000_000, 1_000_000, False, True)
>>> cols = edge_columns([w])
>>> cols["WindowStart"], cols["Calls"], cols["Failed"], cols["ServerBuckets"][0][:2]
([60000], [1], [1], [1, 0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pipeline.graph.edges import GraphWindow
from pipeline.graph.histogram import buckets

EDGES_TABLE: Final = "spanstream_service_graph"
SELF_TIME_TABLE: Final = "spanstream_self_time"
NS_PER_MS: Final = 1_000_000


def edge_columns(windows: Sequence[GraphWindow]) -> dict[str, list[Any]]:
    """``spanstream_service_graph`` columns, rows in (window, edge) order."""
    cols: dict[str, list[Any]] = {name: [] for name in EDGE_COLUMNS}
    for w in windows:
        for key in sorted(w.edges):
            e = w.edges[key]
            client, client_s = buckets(e.client)
            server, server_s = buckets(e.server)
            row = (
                w.window_start_ns // NS_PER_MS,
                w.window_end_ns // NS_PER_MS,
                key.client,
                key.server,
                key.connection_type,
                e.calls,
                e.failed,
                e.client_errors,
                e.server_errors,
                e.client.count,
                client_s * 1000.0,
                client,
                e.server.count,
                server_s * 1000.0,
                server,
            )
            for name, value in zip(EDGE_COLUMNS, row, strict=True):
                cols[name].append(value)
    return cols


def self_time_columns(windows: Sequence[GraphWindow]) -> dict[str, list[Any]]:
    """``spanstream_self_time`` columns, rows in (window, service, operation) order."""
    cols: dict[str, list[Any]] = {name: [] for name in SELF_TIME_COLUMNS}
    for w in windows:
        for key in sorted(w.self_time):
            st = w.self_time[key]
            counts, _ = buckets(st.sketch)
            row = (
                w.window_start_ns // NS_PER_MS,
                w.window_end_ns // NS_PER_MS,
                key.service,
                key.operation,
                st.spans,
                st.errors_originated,
                st.self_ns / NS_PER_MS,
                counts,
            )
            for name, value in zip(SELF_TIME_COLUMNS, row, strict=True):
                cols[name].append(value)
    return cols


EDGE_COLUMNS: Final = (
    "WindowStart",
    "WindowEnd",
    "Client",
    "Server",
    "ConnectionType",
    "Calls",
    "Failed",
    "ClientErrors",
    "ServerErrors",
    "ClientCount",
    "ClientSumMs",
    "ClientBuckets",
    "ServerCount",
    "ServerSumMs",
    "ServerBuckets",
)
SELF_TIME_COLUMNS: Final = (
    "WindowStart",
    "WindowEnd",
    "ServiceName",
    "SpanName",
    "Spans",
    "ErrorsOriginated",
    "SelfSumMs",
    "SelfBuckets",
)
