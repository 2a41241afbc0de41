"""The service graph's values: edges between services and per-operation self time.

Pure data, no I/O. An :class:`EdgeKey` names a directed edge as the Collector's
servicegraph connector does (``client`` calls ``server`` over ``connection_type``);
an :class:`EdgeStats` counts its calls in one window, the failed ones (error status on
either side) and both sides' latency. An :class:`OperationKey` names a (service,
operation) and a :class:`SelfTimeStats` counts the time its spans spent themselves
(their duration minus the union of their children's intervals), plus the error spans
with no erroring child ("errors originate here"). A :class:`GraphWindow` is one closed
window of both.

Everything merges order-independently (counts add, sketches merge), so summing the
stats of any split of the spans gives what one aggregator over all of them would.

>>> e = EdgeStats()
>>> e.add(client_ns=12_000_000, server_ns=10_000_000, client_error=False, server_error=True)
>>> e.add(client_ns=3_000_000, server_ns=None, client_error=False, server_error=False)
>>> e.calls, e.failed, e.server_errors, e.client.count, e.server.count
(2, 1, 1, 2, 1)
>>> EdgeStats.from_dict(e.to_dict()) == e
True
>>> EdgeKey("frontend", "postgresql", DATABASE).label()
'frontend->postgresql (database)'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pipeline.checked import StateError, count, record, text
from pipeline.windows.latency_sketch import LatencySketch

NS_PER_MS: Final = 1_000_000

#: Connection types, as the servicegraph connector's ``connection_type`` label spells them.
DIRECT: Final = ""
DATABASE: Final = "database"
MESSAGING: Final = "messaging_system"
VIRTUAL_NODE: Final = "virtual_node"
CONNECTION_TYPES: Final = (DIRECT, DATABASE, MESSAGING, VIRTUAL_NODE)

#: Longest service (or peer) name an edge read from Kafka or a table may carry.
MAX_NAME = 1024


@dataclass(frozen=True, slots=True, order=True)
class EdgeKey:
    """A directed edge: ``client`` calls ``server`` (a service, or an uninstrumented peer).

    ``connection_type``: ``""`` (instrumented client and server span),
    ``"messaging_system"`` (producer -> consumer), ``"database"`` (client span naming a
    database, ``server`` is its ``db.system``/``db.name``) or ``"virtual_node"`` (client
    span with no instrumented child, ``server`` named by ``peer.service`` or the address).
    """

    client: str
    server: str
    connection_type: str = DIRECT

    def __post_init__(self) -> None:
        if self.connection_type not in CONNECTION_TYPES:
            raise ValueError(f"connection_type must be one of {CONNECTION_TYPES}")

    def label(self) -> str:
        """``client->server``, with the connection type in parentheses when there is one."""
        base = f"{self.client}->{self.server}"
        return f"{base} ({self.connection_type})" if self.connection_type else base

    def to_list(self) -> list[str]:
        """JSON-safe form: ``[client, server, connection_type]``."""
        return [self.client, self.server, self.connection_type]

    @classmethod
    def from_list(cls, value: object) -> EdgeKey:
        """Rebuild from :meth:`to_list` output, checked (``StateError``)."""
        if not isinstance(value, list | tuple) or len(value) != 3:
            raise StateError("schema", "edge: expected [client, server, connection_type]")
        client, server, kind = (text(v, "edge", MAX_NAME) for v in value)
        if kind not in CONNECTION_TYPES:
            raise StateError("schema", f"edge: connection_type {kind[:40]!r}")
        return cls(client, server, kind)


@dataclass(frozen=True, slots=True, order=True)
class OperationKey:
    """A (service, operation) whose self time is counted."""

    service: str
    operation: str


class EdgeStats:
    """Calls over one edge in one window: counts, failures, both sides' latency (ms sketches).

    ``client`` holds the client (or producer) span durations, ``server`` the server (or
    consumer) span durations; a call to an uninstrumented peer has no server side.
    ``failed`` counts calls with an error on either side, ``client_errors`` and
    ``server_errors`` each side's error spans.
    """

    __slots__ = ("calls", "client", "client_errors", "failed", "server", "server_errors")

    def __init__(self) -> None:
        self.calls = 0
        self.failed = 0
        self.client_errors = 0
        self.server_errors = 0
        self.client = LatencySketch()
        self.server = LatencySketch()

    def add(
        self, client_ns: int | None, server_ns: int | None, client_error: bool, server_error: bool
    ) -> None:
        """Count one call; a side whose span is missing passes ``None``."""
        self.calls += 1
        self.client_errors += client_error
        self.server_errors += server_error
        self.failed += client_error or server_error
        if client_ns is not None:
            self.client.add(max(client_ns, 0) / NS_PER_MS)
        if server_ns is not None:
            self.server.add(max(server_ns, 0) / NS_PER_MS)

    def merge(self, other: EdgeStats) -> None:
        """Add everything ``other`` counted."""
        self.calls += other.calls
        self.failed += other.failed
        self.client_errors += other.client_errors
        self.server_errors += other.server_errors
        self.client.merge(other.client)
        self.server.merge(other.server)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "calls": self.calls,
            "failed": self.failed,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "client": self.client.to_dict(),
            "server": self.server.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object) -> EdgeStats:
        """Rebuild from :meth:`to_dict` output, checked (``StateError``: it comes from Kafka)."""
        d = record(data, "edge_stats", _EDGE_FIELDS)
        stats = cls()
        stats.calls = count(d["calls"], "edge_stats.calls")
        stats.failed = count(d["failed"], "edge_stats.failed", stats.calls)
        stats.client_errors = count(d["client_errors"], "edge_stats.client_errors", stats.calls)
        stats.server_errors = count(d["server_errors"], "edge_stats.server_errors", stats.calls)
        stats.client = LatencySketch.from_dict(d["client"])
        stats.server = LatencySketch.from_dict(d["server"])
        if max(stats.client.count, stats.server.count) > stats.calls:
            raise StateError("schema", "edge_stats: more latencies than calls")
        return stats

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EdgeStats):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"EdgeStats(calls={self.calls}, failed={self.failed})"


_EDGE_FIELDS = ["calls", "failed", "client_errors", "server_errors", "client", "server"]


class SelfTimeStats:
    """Self time of one (service, operation) in one window.

    ``spans`` counts its spans, ``self_ns`` sums their self time, ``sketch`` holds it in
    ms; ``errors_originated`` counts error spans none of whose children is an error.
    """

    __slots__ = ("errors_originated", "self_ns", "sketch", "spans")

    def __init__(self) -> None:
        self.spans = 0
        self.self_ns = 0
        self.errors_originated = 0
        self.sketch = LatencySketch()

    def add(self, self_ns: int, error_originated: bool) -> None:
        """Count one span with its self time."""
        self_ns = max(self_ns, 0)
        self.spans += 1
        self.self_ns += self_ns
        self.errors_originated += error_originated
        self.sketch.add(self_ns / NS_PER_MS)

    def merge(self, other: SelfTimeStats) -> None:
        """Add everything ``other`` counted."""
        self.spans += other.spans
        self.self_ns += other.self_ns
        self.errors_originated += other.errors_originated
        self.sketch.merge(other.sketch)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "spans": self.spans,
            "self_ns": self.self_ns,
            "errors_originated": self.errors_originated,
            "sketch": self.sketch.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object) -> SelfTimeStats:
        """Rebuild from :meth:`to_dict` output, checked (``StateError``)."""
        d = record(data, "self_time", ["spans", "self_ns", "errors_originated", "sketch"])
        stats = cls()
        stats.spans = count(d["spans"], "self_time.spans")
        stats.self_ns = count(d["self_ns"], "self_time.self_ns", 2**63 - 1)
        stats.errors_originated = count(d["errors_originated"], "self_time.errors", stats.spans)
        stats.sketch = LatencySketch.from_dict(d["sketch"])
        if stats.sketch.count != stats.spans:
            raise StateError("schema", "self_time: sketch count differs from spans")
        return stats

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SelfTimeStats):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"SelfTimeStats(spans={self.spans}, self_ns={self.self_ns})"


@dataclass
class GraphWindow:
    """The service graph of one window: its edges and per-operation self time."""

    window_start_ns: int
    window_end_ns: int
    edges: dict[EdgeKey, EdgeStats] = field(default_factory=dict)
    self_time: dict[OperationKey, SelfTimeStats] = field(default_factory=dict)

    def merge(self, other: GraphWindow) -> None:
        """Add ``other``'s edges and self time (same window)."""
        if (other.window_start_ns, other.window_end_ns) != (
            self.window_start_ns,
            self.window_end_ns,
        ):
            raise ValueError("cannot merge graph windows of different windows")
        _merge_into(self.edges, other.edges, EdgeStats)
        _merge_into(self.self_time, other.self_time, SelfTimeStats)

    def callers(self, service: str) -> list[str]:
        """Services with an edge into ``service``, sorted."""
        return sorted({k.client for k in self.edges if k.server == service})

    def callees(self, service: str) -> list[str]:
        """Servers (services or peers) ``service`` has an edge to, sorted."""
        return sorted({k.server for k in self.edges if k.client == service})


def _merge_into(into: dict[Any, Any], other: Mapping[Any, Any], make: type) -> None:
    for key, stats in other.items():
        mine = into.get(key)
        if mine is None:
            mine = into[key] = make()
        mine.merge(stats)
