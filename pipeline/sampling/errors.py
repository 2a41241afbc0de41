"""Keep every trace with an error span (the Collector's ``status_code: ERROR`` policy).

>>> from pipeline.sampling.policy import TraceData
>>> ErrorPolicy().evaluate(TraceData("ab" * 16))
<Decision.DROP: 'drop'>
"""

from __future__ import annotations

from pipeline.sampling.policy import Decision, TraceData


class ErrorPolicy:
    """KEEP when any span of the trace has ``is_error`` set (by enrich)."""

    def __init__(self, name: str = "errors") -> None:
        self.name = name

    def evaluate(self, trace: TraceData) -> Decision:
        """KEEP on the first error span found."""
        if any(span.is_error for span in trace.spans):
            return Decision.KEEP
        return Decision.DROP
