"""Where a window's missing spans went: the evidence a failed window comparison leaves.

For each series-window whose Requests differ from the reference, :func:`explain`
collects what each stage saw: the rows every store holds, every partial of that
series and window on the partials topic (with the source range it covers), and
each state of the series the ``windows`` changelog recorded. Comparing the three
tells a partial never sent (ingest side) from one sent but not merged, or merged
and then overwritten (window stage).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.slo.ledger import SliCount
from pipeline.windows.assembler import series_key
from pipeline.windows.hold import Hold
from pipeline.windows.partial import Partial

WindowKey = tuple[str, str, int]
ReadTopic = Callable[[str], list[Any]]

#: At most this many mismatched series-windows are explained (the evidence is verbose).
MAX_EXPLAINED = 3


def mismatched(
    reference: Mapping[WindowKey, int], windows: Mapping[WindowKey, tuple[int, int]]
) -> list[WindowKey]:
    """Series-windows whose Requests differ from the reference, in order.

    >>> mismatched({("s", "o", 0): 3, ("s", "o", 10): 1}, {("s", "o", 0): (2, 0)})
    [('s', 'o', 0), ('s', 'o', 10)]
    """
    keys = set(reference) | set(windows)
    return sorted(k for k in keys if reference.get(k, 0) != windows.get(k, (0, 0))[0])


def explain(
    keys: list[WindowKey],
    reference: Mapping[WindowKey, int],
    store_rows: Callable[[str], list[list[Any]]],
    read_topic: ReadTopic,
    partials_topic: str,
    changelog_topic: str,
) -> list[dict[str, Any]]:
    """The evidence for each of the first :data:`MAX_EXPLAINED` keys (JSON-safe)."""
    keys = keys[:MAX_EXPLAINED]
    if not keys:
        return []
    partials = _partials(read_topic(partials_topic))
    states = _states(read_topic(changelog_topic))
    out = []
    for service, operation, start_ms in keys:
        start_ns = start_ms * 1_000_000
        sql = (
            "SELECT ServiceName, SpanName, toInt64(toUnixTimestamp64Milli(WindowStart)), "
            "Requests, LateSpans FROM spanstream_red_metrics "
            f"WHERE ServiceName = '{_quote(service)}' AND SpanName = '{_quote(operation)}' "
            f"AND toInt64(toUnixTimestamp64Milli(WindowStart)) = {start_ms}"
        )
        mine = [
            p
            for p in partials
            if (p["service"], p["operation"], p["window_start_ns"])
            == (service, operation, start_ns)
        ]
        unique = {(p["source"], p["last"]): p["requests"] for p in mine}
        out.append(
            {
                "series": [service, operation],
                "window_start_ms": start_ms,
                "reference": reference.get((service, operation, start_ms), 0),
                "store_rows": store_rows(sql),
                "partials": mine,
                "partials_unique_requests": sum(unique.values()),
                "states": [
                    _window_view(s, start_ns)
                    for s in states.get(series_key(service, operation), [])
                ],
            }
        )
    return out


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _partials(records: list[Any]) -> list[dict[str, Any]]:
    out = []
    for msg in records:
        value = msg.value()
        if value is None or Hold.is_hold(value) or SliCount.is_sli(value):
            continue
        p = Partial.from_json(value)
        out.append(
            {
                "service": p.service,
                "operation": p.operation,
                "window_start_ns": p.window_start_ns,
                "at": [msg.partition(), msg.offset()],
                "ts_ms": msg.timestamp()[1],
                "source": p.source_partition,
                "first": p.first_offset,
                "last": p.last_offset,
                "requests": p.requests,
            }
        )
    return out


def _states(records: list[Any]) -> dict[str, list[tuple[list[int], dict[str, Any] | None]]]:
    """Series key -> every (changelog position + timestamp, state) in log order; None: deleted."""
    out: dict[str, list[tuple[list[int], dict[str, Any] | None]]] = {}
    for msg in sorted(records, key=lambda m: (m.partition(), m.offset())):
        key = json.loads(msg.key())
        value = msg.value()
        state = None if value is None else json.loads(value)
        at = [msg.partition(), msg.offset(), msg.timestamp()[1]]
        out.setdefault(key, []).append((at, state))
    return out


def _window_view(entry: tuple[list[int], dict[str, Any] | None], start_ns: int) -> dict[str, Any]:
    """One changelog state reduced to the window in question and the dedup marks."""
    at, state = entry
    if state is None:
        return {"at": at, "deleted": True}
    windows = {int(s): w for s, w in state["windows"]}
    window = windows.get(start_ns)
    return {
        "at": at,
        "requests": None if window is None else window.get("requests"),
        "closed_until_ns": state["closed_until_ns"],
        "through": state["through"],
        "pending_late": state["pending_late"],
    }
