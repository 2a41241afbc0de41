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
>>> [(s.operation, s.self_ns, s.error_originated) for s in g.self_times]
[('GET /', 40, False), ('Charge', 10, False), ('Charge', 50, True)]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, Final, NamedTuple, Protocol

from pipeline.graph.edges import (
    DATABASE,
    DIRECT,
    MESSAGING,
    VIRTUAL_NODE,
    EdgeKey,
    OperationKey,
)

#: Span kinds as OTLP ``Span.SpanKind`` numbers (what a head carries).
INTERNAL: Final = 1
SERVER: Final = 2
CLIENT: Final = 3
PRODUCER: Final = 4
CONSUMER: Final = 5
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


class SpanLike(Protocol):
    """What the graph reads of a span: the fields of a head (``pipeline.model.SpanHead``).

    ``kind`` is the OTLP ``Span.SpanKind`` number.
    """

    @property
    def span_id(self) -> str: ...
    @property
    def parent_span_id(self) -> str: ...
    @property
    def service_name(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def kind(self) -> int: ...
    @property
    def timestamp_ns(self) -> int: ...
    @property
    def duration_ns(self) -> int: ...
    @property
    def is_error(self) -> bool: ...


class GraphSpan(NamedTuple):
    """A :class:`SpanLike` with its peer already read (tests, callers without heads).

    ``peer`` and ``database`` are :func:`peer_of` of the span's attributes (only
    unpaired client and producer spans need them).
    """

    span_id: str
    parent_span_id: str
    service_name: str
    operation: str
    kind: int
    timestamp_ns: int
    duration_ns: int
    is_error: bool
    peer: str = ""
    database: bool = False


class Call(NamedTuple):
    """One call over an edge: both sides' durations (``None``: that side has no span)."""

    client: str
    server: str
    connection_type: str
    start_ns: int
    client_ns: int | None
    server_ns: int | None
    client_error: bool
    server_error: bool

    @property
    def key(self) -> EdgeKey:
        return EdgeKey(self.client, self.server, self.connection_type)

    @property
    def failed(self) -> bool:
        return self.client_error or self.server_error


class SelfTime(NamedTuple):
    """One span's self time."""

    service: str
    operation: str
    start_ns: int
    self_ns: int
    error_originated: bool

    @property
    def key(self) -> OperationKey:
        return OperationKey(self.service, self.operation)


#: Reads ``(peer, names a database)`` of a client span (:func:`peer_of` of its attributes).
PeerReader = Callable[[Any], tuple[str, bool]]


def stored_peer(span: SpanLike) -> tuple[str, bool]:
    """The peer a :class:`GraphSpan` already holds (none for any other span)."""
    return getattr(span, "peer", ""), getattr(span, "database", False)


def end_ns(span: SpanLike) -> int:
    """The span's end (a negative duration counts as 0)."""
    return span.timestamp_ns + max(span.duration_ns, 0)


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


def derive(
    spans: Sequence[SpanLike],
    max_spans: int = DEFAULT_MAX_SPANS,
    read_peer: PeerReader = stored_peer,
) -> TraceGraph:
    """The calls and self times of one trace's spans (any order).

    ``read_peer`` is asked only for client and producer spans with no server child.
    Self times come in the spans' order (one per span id); calls sorted by edge, then start.
    """
    graph = TraceGraph(truncated=max(len(spans) - max_spans, 0))
    if graph.truncated:
        spans = spans[:max_spans]
    by_id = {s.span_id: s for s in reversed(spans)}  # a repeated id: the first span wins
    graph.duplicates = len(spans) - len(by_id)
    ordered = sorted(by_id.values(), key=_by_start)
    children: dict[str, list[SpanLike]] = {}
    for span in ordered:
        parent = span.parent_span_id
        if parent and parent in by_id and parent != span.span_id:
            kids = children.get(parent)
            if kids is None:
                children[parent] = [span]
            else:
                kids.append(span)
    paired = _pair_servers(by_id, children, graph)
    calls, own_times = graph.calls, graph.self_times
    no_kids: list[SpanLike] = []
    for span in spans:
        span_id = span.span_id
        if by_id[span_id] is not span:
            continue  # a repeated span id: its first span is the one read
        if span.kind in CALLER_KINDS and span_id not in paired:
            calls.append(_unpaired_client(span, *read_peer(span)))
        kids = children.get(span_id, no_kids)
        if kids:
            own = span.duration_ns - covered_ns(span, kids)
            originated = span.is_error and not any(k.is_error for k in kids)
        else:
            own, originated = span.duration_ns, span.is_error
        own_times.append(
            _new(SelfTime, (span.service_name, span.operation, span.timestamp_ns, own, originated))
        )
    calls.sort(key=_call_order)
    return graph


#: A NamedTuple made without its Python-level ``__new__`` (per span, that call counts).
_new = tuple.__new__
_by_start = attrgetter("timestamp_ns", "span_id")
_call_order = itemgetter(0, 1, 2, 3)


def _pair_servers(
    by_id: Mapping[str, SpanLike], children: Mapping[str, list[SpanLike]], graph: TraceGraph
) -> set[str]:
    """Calls of client spans with a server child, and of root server spans; the paired ids.

    ``children`` in start order: a client span pairs with its first server child.
    """
    paired: set[str] = set()
    for span in by_id.values():
        if span.kind not in CALLEE_KINDS:
            continue
        parent_id = span.parent_span_id
        if not parent_id or parent_id == span.span_id:
            root = (USER, span.service_name, VIRTUAL_NODE, span.timestamp_ns, None,
                    span.duration_ns, False, span.is_error)  # fmt: skip
            graph.calls.append(_new(Call, root))
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
        call = (parent.service_name, span.service_name, MESSAGING if messaging else DIRECT,
                parent.timestamp_ns, parent.duration_ns, span.duration_ns, parent.is_error,
                span.is_error)  # fmt: skip
        graph.calls.append(_new(Call, call))
    return paired


def _unpaired_client(span: SpanLike, peer: str, database: bool) -> Call:
    dur = span.duration_ns
    if database and peer:
        return Call(
            span.service_name, peer, DATABASE, span.timestamp_ns, dur, dur, span.is_error, False
        )
    server = peer or UNKNOWN
    return Call(
        span.service_name, server, VIRTUAL_NODE, span.timestamp_ns, dur, None, span.is_error, False
    )


def covered_ns(span: SpanLike, children: Sequence[SpanLike]) -> int:
    """Nanoseconds of ``span`` covered by the union of its children, clipped to it.

    ``children`` sorted by start time.

    >>> p = GraphSpan("p", "", "s", "op", SERVER, 0, 100, False)
    >>> kids = [GraphSpan(i, "p", "s", "x", CLIENT, a, d, False)
    ...         for i, a, d in (("1", -10, 30), ("2", 10, 30), ("3", 90, 50))]
    >>> covered_ns(p, kids)
    50
    """
    lo = span.timestamp_ns
    hi = lo + (span.duration_ns if span.duration_ns > 0 else 0)
    total = 0
    run_start = run_end = lo
    for kid in children:
        start = kid.timestamp_ns
        end = start + (kid.duration_ns if kid.duration_ns > 0 else 0)
        start = start if start > lo else lo
        end = end if end < hi else hi
        if end <= start:
            continue
        if start > run_end:
            total += run_end - run_start
            run_start = start
        run_end = max(run_end, end)
    return total + run_end - run_start
