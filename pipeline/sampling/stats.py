"""Volume counters of the sampler: what came in and what was kept, per service and policy.

Plain counters that the pipeline exports as Prometheus metrics; bytes are an
estimate of a span's row size (:func:`span_size`), not wire bytes, so the
kept/in ratio is the storage reduction. :func:`span_size` lives with the
decoder (:mod:`pipeline.otlp.heads`), which computes it for every span.

>>> stats = SamplingStats()
>>> stats.services["api"].spans_in += 4
>>> stats.services["api"].spans_in, stats.kept_ratio("api")
(4, 0.0)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.model import Span
from pipeline.otlp._heads import per_service
from pipeline.otlp.heads import SpanFacts, SpanHead, span_size

__all__ = ["SamplingStats", "ServiceVolume", "row_bytes", "span_size"]


def row_bytes(span: SpanFacts) -> int:
    """:func:`span_size` of a span; a head carries it, computed while decoding."""
    if isinstance(span, SpanHead):
        return span.row_bytes
    assert isinstance(span, Span)
    return span_size(span)


@dataclass(slots=True)
class ServiceVolume:
    """Spans and estimated bytes of one service, in and kept."""

    spans_in: int = 0
    bytes_in: int = 0
    spans_kept: int = 0
    bytes_kept: int = 0


@dataclass(slots=True)
class SamplingStats:
    """All sampler counters; only ever increase, so they map onto Prometheus counters."""

    services: defaultdict[str, ServiceVolume] = field(
        default_factory=lambda: defaultdict(ServiceVolume)
    )
    #: Traces (and late fragments) kept, by the name of the policy that kept them.
    kept_by_policy: Counter[str] = field(default_factory=Counter)
    #: Traces (and late fragments) dropped.
    traces_dropped: int = 0
    #: Traces decided before their wait ended because the buffer was full.
    decided_early: int = 0
    #: Spans that arrived after their trace was decided and followed the cached decision.
    late_spans: int = 0

    def record_in(self, spans: Sequence[SpanFacts]) -> None:
        """Count spans entering the sampler."""
        for service, (n, size) in per_service(spans, row_bytes).items():
            volume = self.services[service]
            volume.spans_in += n
            volume.bytes_in += size

    def record_kept(self, spans: Sequence[SpanFacts]) -> None:
        """Count spans leaving the sampler to be stored."""
        for service, (n, size) in per_service(spans, row_bytes).items():
            volume = self.services[service]
            volume.spans_kept += n
            volume.bytes_kept += size

    def kept_ratio(self, service: str) -> float:
        """Share of a service's estimated bytes kept (0.0 when nothing came in)."""
        volume = self.services.get(service)
        if volume is None or volume.bytes_in == 0:
            return 0.0
        return volume.bytes_kept / volume.bytes_in
