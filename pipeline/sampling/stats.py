"""Volume counters of the sampler: what came in and what was kept, per service and policy.

Plain counters that the pipeline exports as Prometheus metrics; bytes are an
estimate of a span's row size (:func:`span_size`), not wire bytes, so the
kept/in ratio is the storage reduction.

>>> stats = SamplingStats()
>>> stats.services["api"].spans_in += 4
>>> stats.services["api"].spans_in, stats.kept_ratio("api")
(4, 0.0)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.model import Span

# Fixed-width columns (timestamps, ids, duration) of one otel_traces row.
_FIXED_ROW_BYTES = 8 + 32 + 16 + 16 + 8


def _map_size(attrs: dict[str, str]) -> int:
    return sum(map(len, attrs)) + sum(map(len, attrs.values())) if attrs else 0


def span_size(span: Span) -> int:
    """Approximate uncompressed bytes of a span's ``otel_traces`` row.

    >>> from pipeline.model import Span
    >>> span_size(Span(0, "a" * 32, "b" * 16, "", "", "GET", "Server", "api", {},
    ...                "", "", {"k": "vv"}, 1, "Unset", ""))
    100
    """
    size = (
        _FIXED_ROW_BYTES
        + len(span.span_name)
        + len(span.service_name)
        + len(span.span_kind)
        + len(span.status_code)
        + len(span.status_message)
        + len(span.trace_state)
        + len(span.scope_name)
        + len(span.scope_version)
        + _map_size(span.resource_attributes)
        + _map_size(span.span_attributes)
    )
    # Most spans have neither; skip building generators for them (hot path).
    if span.events:
        size += sum(8 + len(e.name) + _map_size(e.attributes) for e in span.events)
    if span.links:
        size += sum(48 + len(link.trace_state) for link in span.links)
    return size


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

    def record_in(self, spans: Iterable[Span]) -> None:
        """Count spans entering the sampler."""
        for span in spans:
            volume = self.services[span.service_name]
            volume.spans_in += 1
            volume.bytes_in += span_size(span)

    def record_kept(self, spans: Iterable[Span]) -> None:
        """Count spans leaving the sampler to be stored."""
        for span in spans:
            volume = self.services[span.service_name]
            volume.spans_kept += 1
            volume.bytes_kept += span_size(span)

    def kept_ratio(self, service: str) -> float:
        """Share of a service's estimated bytes kept (0.0 when nothing came in)."""
        volume = self.services.get(service)
        if volume is None or volume.bytes_in == 0:
            return 0.0
        return volume.bytes_kept / volume.bytes_in
