"""Per-window signals the root-cause ranking reads, derived from whole traces (pure).

For each (service, operation, window): calls, errors, *originating* errors (error
spans none of whose children failed: where an error starts, not where it is
seen) and *self time* (a span's duration minus the time its children cover:
where latency is added, not where it is seen); and per (client service, server
service) edge the calls and errors. A trace's spans must be together, as the
tail-sampling buffer holds them.

>>> from types import SimpleNamespace as S
>>> def span(sid, parent, svc, op, start, dur, err=False):
...     return S(span_id=sid, parent_span_id=parent, service_name=svc, operation=op,
...              timestamp_ns=start, duration_ns=dur, is_error=err)
>>> spans = [span("a", "", "front", "GET /", 0, 100, True),
...          span("b", "a", "front", "Charge", 10, 80, True),
...          span("c", "b", "pay", "Charge", 15, 70, True)]
>>> acc = SignalAccumulator(window_ns=1000)
>>> acc.add_trace(spans)
>>> w = acc.pop(0)
>>> [(k.service, k.operation, s.calls, s.origin_errors, s.self_ns) for k, s in sorted(w.ops.items())]
[('front', 'Charge', 1, 0, 10), ('front', 'GET /', 1, 0, 20), ('pay', 'Charge', 1, 1, 70)]
>>> w.edges[("front", "pay")].calls
1
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class SpanLike(Protocol):
    """What the signals read of a span (``pipeline.model.SpanHead`` has these)."""

    @property
    def span_id(self) -> str: ...
    @property
    def parent_span_id(self) -> str: ...
    @property
    def service_name(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def timestamp_ns(self) -> int: ...
    @property
    def duration_ns(self) -> int: ...
    @property
    def is_error(self) -> bool: ...


@dataclass(frozen=True, order=True, slots=True)
class OpKey:
    """One operation of one service."""

    service: str
    operation: str


@dataclass(slots=True)
class OpStats:
    """One operation in one window: calls, errors, originating errors, summed self time."""

    calls: int = 0
    errors: int = 0
    origin_errors: int = 0
    self_ns: int = 0

    def add(self, other: OpStats) -> None:
        """Sum ``other`` into this."""
        self.calls += other.calls
        self.errors += other.errors
        self.origin_errors += other.origin_errors
        self.self_ns += other.self_ns

    @property
    def self_mean_ms(self) -> float:
        """Mean self time per call, in milliseconds."""
        return self.self_ns / self.calls / 1e6 if self.calls else 0.0


@dataclass(slots=True)
class EdgeCalls:
    """Calls from one service to another in one window, and how many failed."""

    calls: int = 0
    errors: int = 0


@dataclass
class WindowSignals:
    """Every operation's and edge's signals of one window."""

    window_start_ns: int
    ops: dict[OpKey, OpStats] = field(default_factory=dict)
    edges: dict[tuple[str, str], EdgeCalls] = field(default_factory=dict)


def _covered(intervals: list[tuple[int, int]]) -> int:
    """Total length of the union of ``intervals``."""
    total, end = 0, None
    for lo, hi in sorted(intervals):
        if end is None or lo > end:
            total += hi - lo
            end = hi
        elif hi > end:
            total += hi - end
            end = hi
    return total


def self_time_ns(span: SpanLike, children: Iterable[SpanLike]) -> int:
    """``span``'s duration minus the time its children cover (clipped to the span)."""
    start, end = span.timestamp_ns, span.timestamp_ns + span.duration_ns
    spans = [(max(k.timestamp_ns, start), min(k.timestamp_ns + k.duration_ns, end)) for k in children]
    return max(0, span.duration_ns - _covered([(lo, hi) for lo, hi in spans if hi > lo]))


def children_of(spans: Sequence[SpanLike]) -> dict[str, list[SpanLike]]:
    out: dict[str, list[SpanLike]] = {}
    for s in spans:
        if s.parent_span_id:
            out.setdefault(s.parent_span_id, []).append(s)
    return out


class SignalAccumulator:
    """Adds whole traces into per-window signals; :meth:`pop` hands a window out."""

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._windows: dict[int, WindowSignals] = {}

    def add_trace(self, spans: Sequence[SpanLike]) -> None:
        """Every span of one trace (each counted in the window its start falls in)."""
        children = children_of(spans)
        by_id = {s.span_id: s for s in spans}
        for s in spans:
            kids = children.get(s.span_id, [])
            start = s.timestamp_ns - s.timestamp_ns % self.window_ns
            window = self._windows.setdefault(start, WindowSignals(start))
            stats = window.ops.setdefault(OpKey(s.service_name, s.operation), OpStats())
            stats.calls += 1
            stats.self_ns += self_time_ns(s, kids)
            stats.errors += s.is_error
            stats.origin_errors += s.is_error and not any(k.is_error for k in kids)
            parent = by_id.get(s.parent_span_id)
            if parent is not None and parent.service_name != s.service_name:
                edge = window.edges.setdefault(
                    (parent.service_name, s.service_name), EdgeCalls()
                )
                edge.calls += 1
                edge.errors += s.is_error

    def windows(self) -> list[int]:
        """Starts of the windows holding signals, oldest first."""
        return sorted(self._windows)

    def pop(self, window_start_ns: int) -> WindowSignals:
        """The signals of one window (empty if none), removed from the accumulator."""
        return self._windows.pop(window_start_ns, WindowSignals(window_start_ns))


def merge_ops(windows: Iterable[WindowSignals]) -> dict[OpKey, OpStats]:
    """Per-operation sums over several windows."""
    out: dict[OpKey, OpStats] = {}
    for w in windows:
        for key, stats in w.ops.items():
            out.setdefault(key, OpStats()).add(stats)
    return out
