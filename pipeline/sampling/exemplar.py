"""Keep traces that the window aggregation asked for as exemplars.

The windows stage picks exemplar trace ids (errors first, slowest next) and
calls :meth:`ExemplarRequests.request` so that every exemplar an alert names is
stored. A request only helps while the trace is still buffered: the shell must
request candidates as the partial aggregate admits them, not at window close
(by then the trace was decided ``decision_wait`` after its last span).

Requests are bounded (oldest out first) and expire ``ttl_seconds`` after they
were made, in processing time.

>>> from pipeline.clock import ManualClock
>>> clock = ManualClock()
>>> wanted = ExemplarRequests(clock, ttl_seconds=60)
>>> wanted.request("ab" * 16)
>>> "ab" * 16 in wanted
True
>>> clock.advance(61)
>>> "ab" * 16 in wanted
False
"""

from __future__ import annotations

from collections import OrderedDict

from pipeline.clock import Clock
from pipeline.sampling.policy import Decision, TraceData


class ExemplarRequests:
    """Trace ids to keep, each until ``ttl_seconds`` after it was requested."""

    def __init__(
        self, clock: Clock, ttl_seconds: float = 600.0, max_requests: int = 100_000
    ) -> None:
        self._clock = clock
        self.ttl_seconds = ttl_seconds
        self.max_requests = max_requests
        # Insertion order is expiry order: every request gets the same ttl.
        self._expires: OrderedDict[str, float] = OrderedDict()

    def request(self, trace_id: str) -> None:
        """Ask for a trace to be kept; a repeated request restarts its ttl."""
        self._expire()
        self._expires.pop(trace_id, None)
        self._expires[trace_id] = self._clock.now() + self.ttl_seconds
        while len(self._expires) > self.max_requests:
            self._expires.popitem(last=False)

    def __contains__(self, trace_id: object) -> bool:
        expires = self._expires.get(trace_id) if isinstance(trace_id, str) else None
        return expires is not None and self._clock.now() < expires

    def _expire(self) -> None:
        now = self._clock.now()
        while self._expires:
            trace_id, expires = next(iter(self._expires.items()))
            if expires > now:
                break
            del self._expires[trace_id]

    def __len__(self) -> int:
        self._expire()
        return len(self._expires)


class ExemplarPolicy:
    """KEEP a trace whose id has a live exemplar request."""

    def __init__(self, requests: ExemplarRequests, name: str = "exemplar") -> None:
        self.name = name
        self.requests = requests

    def evaluate(self, trace: TraceData) -> Decision:
        """KEEP when the trace id was requested and the request has not expired."""
        return Decision.KEEP if trace.trace_id in self.requests else Decision.DROP
