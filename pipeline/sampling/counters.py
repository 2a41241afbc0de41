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

from pipeline import native
from pipeline.model import SpanHead
from pipeline.otlp.heads import span_size

__all__ = ["SamplingStats", "ServiceVolume", "per_service", "per_service_of", "span_size"]


def per_service(spans: Sequence[SpanHead]) -> dict[str, list[int]]:
    """``{series service: [spans, row bytes]}`` in first-seen order: the one place spans
    are counted per service (the sampler, the volume meter and the kept-spans metric).

    Natively (:func:`pipeline.native.per_service`); :func:`per_service_of` is the definition.
    """
    counts: dict[str, list[int]] = native.per_service(spans)
    return counts


def per_service_of(spans: Sequence[SpanHead]) -> dict[str, list[int]]:
    """The reference of :func:`per_service`; ``row_bytes`` is :func:`span_size`, from decoding.

    >>> from pipeline.model import SpanHead
    >>> heads = [SpanHead("t", "s", "", 0, 1, svc, "op", False, 10, b"", 0, 0, None, None)
    ...          for svc in ("api", "db", "api")]
    >>> per_service_of(heads)
    {'api': [2, 20], 'db': [1, 10]}
    """
    out: dict[str, list[int]] = {}
    for span in spans:
        entry = out.setdefault(span.service_name, [0, 0])
        entry[0] += 1
        entry[1] += span.row_bytes
    return out


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

    def record_in(self, spans: Sequence[SpanHead]) -> None:
        """Count spans entering the sampler."""
        for service, (n, size) in per_service(spans).items():
            volume = self.services[service]
            volume.spans_in += n
            volume.bytes_in += size

    def record_kept(self, spans: Sequence[SpanHead]) -> None:
        """Count spans leaving the sampler to be stored."""
        for service, (n, size) in per_service(spans).items():
            volume = self.services[service]
            volume.spans_kept += n
            volume.bytes_kept += size

    def kept_ratio(self, service: str) -> float:
        """Share of a service's estimated bytes kept (0.0 when nothing came in)."""
        volume = self.services.get(service)
        if volume is None or volume.bytes_in == 0:
            return 0.0
        return volume.bytes_kept / volume.bytes_in
