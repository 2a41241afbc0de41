"""What the root-cause ranking reads of the service graph (:mod:`pipeline.graph`), summed.

The graph stage derives per window, for each (service, operation), its spans,
summed *self time* (a span's duration minus the time its children cover: where
latency is added, not where it is seen) and *originating errors* (error spans
none of whose children failed: where errors start); and the edges between
services. Ranking needs those summed over an incident's windows, and the edges
between services (calls to databases and uninstrumented peers name no service
that could alert, so they are left out of the graph the grouping walks).

>>> from pipeline.graph.edges import EdgeKey, EdgeStats, GraphWindow, SelfTimeStats
>>> w = GraphWindow(0, 60)
>>> st = w.self_time[OpKey("pay", "Charge")] = SelfTimeStats()
>>> st.add(8_000_000, True); st.add(6_000_000, False)
>>> w.edges[EdgeKey("web", "pay")] = EdgeStats()
>>> w.edges[EdgeKey("pay", "postgresql", "database")] = EdgeStats()
>>> s = ops_of([w, w])[OpKey("pay", "Charge")]
>>> s.calls, s.origin_errors, s.self_mean_ms, service_edges([w])
(4, 2, 7.0, {('web', 'pay')})
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.graph.edges import DIRECT, MESSAGING, GraphWindow, OperationKey

#: One operation of one service.
OpKey = OperationKey


@dataclass(slots=True)
class OpStats:
    """One operation over some windows: calls, originating errors, summed self time."""

    calls: int = 0
    origin_errors: int = 0
    self_ns: int = 0

    @property
    def self_mean_ms(self) -> float:
        """Mean self time per call, in milliseconds."""
        return self.self_ns / self.calls / 1e6 if self.calls else 0.0


def ops_of(windows: Iterable[GraphWindow]) -> dict[OpKey, OpStats]:
    """Per-operation sums over ``windows``."""
    out: dict[OpKey, OpStats] = {}
    for window in windows:
        for key, st in window.self_time.items():
            mine = out.get(key)
            if mine is None:
                mine = out[key] = OpStats()
            mine.calls += st.spans
            mine.origin_errors += st.errors_originated
            mine.self_ns += st.self_ns
    return out


def service_edges(windows: Iterable[GraphWindow]) -> set[tuple[str, str]]:
    """(client, server) pairs of calls between services in ``windows``."""
    return {
        (key.client, key.server)
        for window in windows
        for key in window.edges
        if key.connection_type in (DIRECT, MESSAGING)
    }
