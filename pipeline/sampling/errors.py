"""Keep every trace with an error span (the Collector's ``status_code: ERROR`` policy).

>>> from pipeline.sampling.policy import TraceData
>>> ErrorPolicy().evaluate(TraceData("ab" * 16))
<Decision.DROP: 'drop'>
"""

from __future__ import annotations

from operator import attrgetter

from pipeline.sampling.policy import Decision, TraceData

_is_error = attrgetter("is_error")


class ErrorPolicy:
    """KEEP when any span of the trace has ``is_error`` set (by enrich)."""

    def __init__(self, name: str = "errors") -> None:
        self.name = name

    def evaluate(self, trace: TraceData) -> Decision:
        """KEEP on the first error span found."""
        if any(map(_is_error, trace.spans)):
            return Decision.KEEP
        return Decision.DROP
