"""One pass from a decided trace's spans to the aggregator's accumulators (pure).

:func:`~pipeline.graph.derive.derive` states the rules and builds a :class:`TraceGraph`
of :class:`Call` and :class:`SelfTime` values; the ingest thread runs this instead, per
decided trace, and must get the same per-window sums (``tests/unit/graph/test_fold.py``
holds the two to each other on generated traces). It differs in how, not what:

* self times go straight into the aggregator's per-(window, service, operation) lists,
  without a :class:`SelfTime` per span;
* the spans are not sorted: only a span's children are, when it has more than one
  (the pairing rule and the interval union need them in start order);
* pairing is read from the client side: a client span pairs with its first server
  child, so each further server child is one unpaired span, and a server span with a
  missing or non-client parent is one more (as :func:`derive` counts them).

Calls are still tuples sorted as :func:`derive` sorts them, so the aggregator meets new
peers in the same order (which peers pass the cap depends on it).

>>> from pipeline.graph.derive import CLIENT, SERVER, GraphSpan, stored_peer
>>> spans = [GraphSpan("a", "", "frontend", "GET /", SERVER, 0, 100, False),
...          GraphSpan("b", "a", "frontend", "Charge", CLIENT, 10, 60, False),
...          GraphSpan("c", "b", "payment", "Charge", SERVER, 15, 50, True)]
>>> values, originated = {}, {}
>>> t = fold(spans, 10_000, stored_peer, 60, values, originated)
>>> [c[:3] for c in t.calls], t.unpaired_server, values[(0, "frontend", "GET /")]
([('frontend', 'payment', ''), ('user', 'frontend', 'virtual_node')], 0, [40])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from pipeline.graph.derive import (
    CALLEE_KINDS,
    CALLER_KINDS,
    CONSUMER,
    DATABASE,
    DIRECT,
    MESSAGING,
    PRODUCER,
    UNKNOWN,
    USER,
    VIRTUAL_NODE,
    PeerReader,
    _by_start,
    _call_order,
    covered_ns,
)

#: (window start, service, operation) -> self times; -> spans that originate an error.
SelfValues = dict[tuple[int, str, str], list[int]]
Originated = dict[tuple[int, str, str], int]
_MESSAGING_KINDS = frozenset({PRODUCER, CONSUMER})


class Folded(NamedTuple):
    """What :func:`fold` leaves for the aggregator: calls (``Call`` fields) and counts."""

    calls: list[tuple[Any, ...]]
    unpaired_server: int
    truncated: int
    duplicates: int


def fold(
    spans: Sequence[Any],
    max_spans: int,
    read_peer: PeerReader,
    window_ns: int,
    values: SelfValues,
    originated: Originated,
) -> Folded:
    """File one trace's self times into ``values``/``originated``; its calls, sorted."""
    truncated = len(spans) - max_spans
    if truncated > 0:
        spans = spans[:max_spans]
    else:
        truncated = 0
    by_id = {s.span_id: s for s in reversed(spans)}  # a repeated id: the first span wins
    children = _children(by_id)
    calls: list[tuple[Any, ...]] = []
    unpaired = 0
    for span in by_id.values():
        span_id = span.span_id
        kind = span.kind
        start = span.timestamp_ns
        kids = children.get(span_id)
        if kids is None:
            own, origin = span.duration_ns, span.is_error
        else:
            own = span.duration_ns - covered_ns(span, kids)
            origin = span.is_error and not any(k.is_error for k in kids)
        at = (start - start % window_ns, span.service_name, span.operation)
        got = values.get(at)
        if got is None:
            values[at] = [own]
        else:
            got.append(own)
        if origin:
            originated[at] = originated.get(at, 0) + 1
        if kind in CALLEE_KINDS:
            parent_id = span.parent_span_id
            if not parent_id or parent_id == span_id:
                calls.append((USER, span.service_name, VIRTUAL_NODE, start, None,
                              span.duration_ns, False, span.is_error))  # fmt: skip
                continue
            parent = by_id.get(parent_id)
            if parent is None or parent.kind not in CALLER_KINDS:
                unpaired += 1
        elif kind in CALLER_KINDS:
            servers = [k for k in kids if k.kind in CALLEE_KINDS] if kids else kids
            if servers:
                unpaired += len(servers) - 1
                calls.append(_paired(span, servers[0]))
            else:
                calls.append(_unpaired_client(span, *read_peer(span)))
    calls.sort(key=_call_order)
    return Folded(calls, unpaired, truncated, len(spans) - len(by_id))


def _children(by_id: dict[str, Any]) -> dict[str, list[Any]]:
    """Each parent's children in start order (then span id), spans naming themselves aside."""
    children: dict[str, list[Any]] = {}
    for span in by_id.values():
        parent = span.parent_span_id
        if parent and parent in by_id and parent != span.span_id:
            kids = children.get(parent)
            if kids is None:
                children[parent] = [span]
            else:
                kids.append(span)
    for kids in children.values():
        if len(kids) > 1:
            kids.sort(key=_by_start)
    return children


def _paired(client: Any, server: Any) -> tuple[Any, ...]:
    messaging = client.kind in _MESSAGING_KINDS or server.kind in _MESSAGING_KINDS
    return (client.service_name, server.service_name, MESSAGING if messaging else DIRECT,
            client.timestamp_ns, client.duration_ns, server.duration_ns, client.is_error,
            server.is_error)  # fmt: skip


def _unpaired_client(span: Any, peer: str, database: bool) -> tuple[Any, ...]:
    dur = span.duration_ns
    if database and peer:
        return (span.service_name, peer, DATABASE, span.timestamp_ns, dur, dur, span.is_error,
                False)  # fmt: skip
    return (span.service_name, peer or UNKNOWN, VIRTUAL_NODE, span.timestamp_ns, dur, None,
            span.is_error, False)  # fmt: skip
