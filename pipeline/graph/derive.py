"""Edges and self time of one trace, from its spans (pure).

The rules follow the Collector's servicegraph connector:

* a ``Client`` (or ``Producer``) span in service A whose child (matched by parent span
  id) is a ``Server`` (or ``Consumer``) span in B is one call A -> B; it is a
  ``messaging_system`` edge when either side is a producer/consumer, else a direct
  one (``""``). It failed when either span has error status. Only the first server
  child (by start, then span id) pairs; further ones count as unpaired.
* a client span with no server child that names a database (``db.system.name``,
  ``db.system``, ``db.name`` or ``db.namespace``) is a ``database`` edge to that
  database; its server latency is the client's (the connector's rule: a database
  request has one span).
* any other client span with no server child is a ``virtual_node`` edge to its peer:
  ``peer.service``, else ``server.address``, else ``net.peer.name``, else ``unknown``.
* a root ``Server`` (or ``Consumer``) span (no parent span id) is a ``virtual_node``
  edge from ``user`` (the connector's rule for uninstrumented callers).
* a server span whose parent is missing from the trace, or is not a client span, is
  not an edge: it counts as unpaired.

Self time of a span: its duration minus the union of its children's intervals, each
clipped to the span (overlapping children count once, async children past its end
not at all). A span "originates" an error when it is an error and none of its
children is.

Adversarial input is bounded: a trace over ``max_spans`` spans is cut to its first
``max_spans`` (counted), duplicate span ids keep the first, a span naming itself as
parent is a root, and parent links are followed one level only, so cycles cannot loop.

>>> spans = [
...     GraphSpan("a", "", "frontend", "GET /", SERVER, 0, 100, False),
...     GraphSpan("b", "a", "frontend", "Charge", CLIENT, 10, 60, False),
...     GraphSpan("c", "b", "payment", "Charge", SERVER, 15, 50, True),
... ]
>>> g = derive(spans)
>>> [(c.key.label(), c.client_ns, c.server_ns, c.failed) for c in g.calls]
[('frontend->payment', 60, 50, True), ('user->frontend (virtual_node)', None, 100, False)]
>>> [(s.key.operation, s.self_ns, s.error_originated) for s in g.self_times]
[('GET /', 40, False), ('Charge', 10, False), ('Charge', 50, True)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from pipeline.graph.edges import (
    DATABASE,
    DIRECT,
    MESSAGING,
    VIRTUAL_NODE,
    EdgeKey,
    OperationKey,
)

#: Span kinds as the model spells them (``pipeline.model.SPAN_KINDS``).
SERVER: Final = "Server"
CLIENT: Final = "Client"
PRODUCER: Final = "Producer"
CONSUMER: Final = "Consumer"
INTERNAL: Final = "Internal"
CALLER_KINDS: Final = frozenset({CLIENT, PRODUCER})
CALLEE_KINDS: Final = frozenset({SERVER, CONSUMER})

#: Client-span attributes naming a database, in order (the first present names it).
DATABASE_ATTRIBUTES: Final = ("db.system.name", "db.system", "db.name", "db.namespace")
#: Client-span attributes naming an uninstrumented peer, in order.
PEER_ATTRIBUTES: Final = ("peer.service", "server.address", "net.peer.name")
#: Every attribute the rules read (what a span reader must hand over).
GRAPH_ATTRIBUTES: Final = DATABASE_ATTRIBUTES + PEER_ATTRIBUTES
USER: Final = "user"
UNKNOWN: Final = "unknown"
#: Longest peer name kept (a longer one is cut): peers come from span attributes.
MAX_PEER = 256
DEFAULT_MAX_SPANS = 10_000


@dataclass(frozen=True, slots=True)
class GraphSpan:
    """What the graph reads of one span.

    ``peer`` and ``database`` are :func:`peer_of` of the span's attributes (only client
    and producer spans need them).
    """

    span_id: str
    parent_span_id: str
    service: str
    operation: str
    kind: str
    start_ns: int
    duration_ns: int
    is_error: bool
    peer: str = ""
    database: bool = False

    @property
    def end_ns(self) -> int:
        return self.start_ns + max(self.duration_ns, 0)


@dataclass(frozen=True, slots=True)
class Call:
    """One call over an edge: both sides' durations (``None``: that side has no span)."""

    key: EdgeKey
    start_ns: int
    client_ns: int | None
    server_ns: int | None
    client_error: bool
    server_error: bool

    @property
    def failed(self) -> bool:
        return self.client_error or self.server_error


@dataclass(frozen=True, slots=True)
class SelfTime:
    """One span's self time."""

    key: OperationKey
    start_ns: int
    self_ns: int
    error_originated: bool


@dataclass
class TraceGraph:
    """What one trace yields: calls, self times and what could not be paired."""

    calls: list[Call] = field(default_factory=list)
    self_times: list[SelfTime] = field(default_factory=list)
    #: server/consumer spans whose parent is missing or not a client span
    unpaired_server: int = 0
    #: spans past ``max_spans``, not read
    truncated: int = 0
    #: spans whose span id repeats an earlier one, not read
    duplicates: int = 0


def peer_of(attributes: Mapping[str, str]) -> tuple[str, bool]:
    """``(peer name, names a database)`` of a client span's attributes.

    >>> peer_of({"db.system": "postgresql", "server.address": "pg-1"})
    ('postgresql', True)
    >>> peer_of({"server.address": "10.0.0.7", "peer.service": "stripe"})
    ('stripe', False)
    >>> peer_of({})
    ('', False)
    """
    for name in DATABASE_ATTRIBUTES:
        value = attributes.get(name)
        if value:
            return value[:MAX_PEER], True
    for name in PEER_ATTRIBUTES:
        value = attributes.get(name)
        if value:
            return value[:MAX_PEER], False
    return "", False


def derive(spans: Sequence[GraphSpan], max_spans: int = DEFAULT_MAX_SPANS) -> TraceGraph:
    """The calls and self times of one trace's spans (any order)."""
    graph = TraceGraph(truncated=max(len(spans) - max_spans, 0))
    by_id: dict[str, GraphSpan] = {}
    for span in spans[:max_spans]:
        if span.span_id in by_id:
            graph.duplicates += 1
        else:
            by_id[span.span_id] = span
    children = _children(by_id)
    paired = _pair_servers(by_id, children, graph)
    for span in by_id.values():
        if span.kind in CALLER_KINDS and span.span_id not in paired:
            graph.calls.append(_unpaired_client(span))
        kids = children.get(span.span_id, ())
        graph.self_times.append(
            SelfTime(
                OperationKey(span.service, span.operation),
                span.start_ns,
                span.duration_ns - covered_ns(span, kids),
                span.is_error and not any(k.is_error for k in kids),
            )
        )
    graph.calls.sort(key=lambda c: (c.key, c.start_ns))
    return graph


def _children(by_id: Mapping[str, GraphSpan]) -> dict[str, list[GraphSpan]]:
    """Each span id's children present in the trace, by start time then span id."""
    children: dict[str, list[GraphSpan]] = {}
    for span in by_id.values():
        parent = span.parent_span_id
        if parent and parent != span.span_id and parent in by_id:
            children.setdefault(parent, []).append(span)
    for kids in children.values():
        kids.sort(key=lambda s: (s.start_ns, s.span_id))
    return children


def _pair_servers(
    by_id: Mapping[str, GraphSpan], children: Mapping[str, list[GraphSpan]], graph: TraceGraph
) -> set[str]:
    """Calls of client spans with a server child, and of root server spans; the paired ids."""
    paired: set[str] = set()
    for span in by_id.values():
        if span.kind not in CALLEE_KINDS:
            continue
        parent_id = span.parent_span_id
        if not parent_id or parent_id == span.span_id:
            key = EdgeKey(USER, span.service, VIRTUAL_NODE)
            graph.calls.append(
                Call(key, span.start_ns, None, span.duration_ns, False, span.is_error)
            )
            continue
        parent = by_id.get(parent_id)
        if parent is None or parent.kind not in CALLER_KINDS or parent_id in paired:
            graph.unpaired_server += 1
            continue
        first = next(k for k in children[parent_id] if k.kind in CALLEE_KINDS)
        if first is not span:
            graph.unpaired_server += 1
            continue
        paired.add(parent_id)
        messaging = PRODUCER in (parent.kind, span.kind) or CONSUMER in (parent.kind, span.kind)
        key = EdgeKey(parent.service, span.service, MESSAGING if messaging else DIRECT)
        graph.calls.append(
            Call(
                key,
                parent.start_ns,
                parent.duration_ns,
                span.duration_ns,
                parent.is_error,
                span.is_error,
            )
        )
    return paired


def _unpaired_client(span: GraphSpan) -> Call:
    if span.database and span.peer:
        key = EdgeKey(span.service, span.peer, DATABASE)
        return Call(key, span.start_ns, span.duration_ns, span.duration_ns, span.is_error, False)
    key = EdgeKey(span.service, span.peer or UNKNOWN, VIRTUAL_NODE)
    return Call(key, span.start_ns, span.duration_ns, None, span.is_error, False)


def covered_ns(span: GraphSpan, children: Sequence[GraphSpan]) -> int:
    """Nanoseconds of ``span`` covered by the union of its children, clipped to it.

    ``children`` sorted by start time.

    >>> p = GraphSpan("p", "", "s", "op", SERVER, 0, 100, False)
    >>> kids = [GraphSpan(i, "p", "s", "x", CLIENT, a, d, False)
    ...         for i, a, d in (("1", -10, 30), ("2", 10, 30), ("3", 90, 50))]
    >>> covered_ns(p, kids)
    50
    """
    lo, hi = span.start_ns, span.end_ns
    total = 0
    run_start = run_end = lo
    for kid in children:
        start, end = max(kid.start_ns, lo), min(kid.end_ns, hi)
        if end <= start:
            continue
        if start > run_end:
            total += run_end - run_start
            run_start = start
        run_end = max(run_end, end)
    return total + run_end - run_start
