"""Volume reduction per service: the sampler's counters as metrics and a periodic log line.

What is counted where:

``spanstream_bytes_in_total``
    Kafka payload bytes, per record split across its services by span share
    (a record's bytes cannot be attributed span by span without re-encoding).
``spanstream_bytes_kept_total``
    Estimated ``otel_traces`` row bytes of kept spans
    (:func:`~pipeline.sampling.counters.span_size`), counted at the decision.
``spanstream_sampling_keep_ratio``
    Spans kept / spans decided per service, since the worker started.
``spanstream_spans_kept_total``
    Spans of kept traces per service and policy, counted once ``otel_traces``
    acknowledged their insert.

The log line compares like with like: spans in vs. kept and estimated row
bytes in vs. kept (both from :class:`~pipeline.sampling.counters.SamplingStats`),
so its percentages are the storage reduction over the last interval. Wire
bytes are not in it: protobuf payload and row size differ by encoding alone.

>>> from pipeline.sampling.counters import ServiceVolume
>>> volume_line({"api": ServiceVolume(1000, 2_000_000, 50, 120_000)}, 30.0)
'volume in 30s: api spans 1000->50 (5.0%) bytes 2.0MB->120.0kB (6.0%)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline import metrics
from pipeline.clock import Clock
from pipeline.otlp.decode import Decoded
from pipeline.sampling.buffer import DecidedTrace
from pipeline.sampling.counters import SamplingStats, ServiceVolume, per_service

#: Seconds between two volume log lines.
REPORT_INTERVAL = 30.0


def volume_delta(
    now: Mapping[str, ServiceVolume], before: Mapping[str, ServiceVolume]
) -> dict[str, ServiceVolume]:
    """Per service, what ``now`` counted beyond ``before``; services with no change are left out.

    >>> a = {"api": ServiceVolume(10, 100, 1, 10), "db": ServiceVolume(5, 50, 0, 0)}
    >>> volume_delta(a, {"api": ServiceVolume(4, 40, 1, 10), "db": ServiceVolume(5, 50, 0, 0)})
    {'api': ServiceVolume(spans_in=6, bytes_in=60, spans_kept=0, bytes_kept=0)}
    """
    out = {}
    zero = ServiceVolume()
    for service, v in now.items():
        b = before.get(service, zero)
        d = ServiceVolume(
            v.spans_in - b.spans_in,
            v.bytes_in - b.bytes_in,
            v.spans_kept - b.spans_kept,
            v.bytes_kept - b.bytes_kept,
        )
        if d != zero:
            out[service] = d
    return out


def volume_line(delta: Mapping[str, ServiceVolume], seconds: float) -> str:
    """One readable line: per service (by name) spans and bytes in -> kept with the kept share.

    >>> volume_line({}, 30.0)
    'volume in 30s: no spans'
    >>> volume_line({"b": ServiceVolume(0, 0, 3, 300), "a": ServiceVolume(8, 999, 2, 9)}, 29.6)
    'volume in 30s: a spans 8->2 (25.0%) bytes 999B->9B (0.9%); b spans 0->3 (-) bytes 0B->300B (-)'
    """
    head = f"volume in {seconds:.0f}s: "
    if not delta:
        return head + "no spans"
    parts = [
        f"{service} spans {v.spans_in}->{v.spans_kept} ({_share(v.spans_kept, v.spans_in)})"
        f" bytes {_size(v.bytes_in)}->{_size(v.bytes_kept)} ({_share(v.bytes_kept, v.bytes_in)})"
        for service, v in sorted(delta.items())
    ]
    return head + "; ".join(parts)


def _share(part: int, whole: int) -> str:
    # Kept can exceed in within one interval (decided now, arrived before): still shown.
    return f"{100 * part / whole:.1f}%" if whole > 0 else "-"


def _size(n: int) -> str:
    """Decimal units, as dashboards show bytes.

    >>> _size(999), _size(1500), _size(2_500_000), _size(3 * 10**9)
    ('999B', '1.5kB', '2.5MB', '3.0GB')
    """
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n}B"


def _copy(services: Mapping[str, ServiceVolume]) -> dict[str, ServiceVolume]:
    return {
        s: ServiceVolume(v.spans_in, v.bytes_in, v.spans_kept, v.bytes_kept)
        for s, v in services.items()
    }


class VolumeMeter:
    """Feeds the volume metrics and says when the next log line is due."""

    def __init__(
        self, stats: SamplingStats, clock: Clock, interval: float = REPORT_INTERVAL
    ) -> None:
        self.stats = stats
        self.clock = clock
        self.interval = interval
        self._exported: dict[str, ServiceVolume] = {}
        self._reported: dict[str, ServiceVolume] = {}
        self._reported_at = clock.now()
        self._decided: dict[str, list[int]] = {}  # service -> [spans decided, spans kept]
        # Counted since the last tick: messages per encoding, [spans, bytes] per service.
        self._messages: dict[str, int] = {}
        self._in: dict[str, list[float]] = {}

    def record_in(self, decoded: Decoded) -> None:
        """Count one record's spans and its payload bytes (split by span share).

        Counted here, exported at the next :meth:`tick`: a Prometheus counter
        takes a lock per ``inc``, which per record and service cost as much as
        decoding the record's spans.
        """
        self._messages[decoded.encoding] = self._messages.get(decoded.encoding, 0) + 1
        total = len(decoded.spans)
        pending = self._in
        for service, (n, _) in per_service(decoded.spans).items():
            counts = pending.get(service)
            if counts is None:
                counts = pending[service] = [0, 0.0]
            counts[0] += n
            counts[1] += decoded.bytes * n / total

    def record_decided(self, decided: Sequence[DecidedTrace]) -> None:
        """Count decided spans: dropped ones and the keep ratio per service.

        Dropped spans are summed over the whole batch and each service's counter
        is incremented once: a counter ``inc`` (label lookup and lock) per trace
        and service cost more than counting the spans.
        """
        for service, n in self._count_decided(decided).items():
            metrics.SPANS_DROPPED.labels(service).inc(n)
        for service, (total, kept) in self._decided.items():
            metrics.KEEP_RATIO.labels(service).set(kept / total if total else 0.0)

    def record_written(self, traces: Sequence[DecidedTrace]) -> None:
        """Count the spans of kept traces whose rows the store acknowledged."""
        for trace in traces:
            for service, (n, _) in per_service(trace.heads).items():
                metrics.SPANS_KEPT.labels(service, trace.policy or "").inc(n)

    def _count_decided(self, decided: Sequence[DecidedTrace]) -> dict[str, int]:
        """Add to the decided and kept spans per service; returns the dropped ones."""
        dropped: dict[str, int] = {}
        totals = self._decided
        for trace in decided:
            kept = trace.kept
            for service, (n, _) in per_service(trace.heads).items():
                counts = totals.get(service)
                if counts is None:
                    counts = totals[service] = [0, 0]
                counts[0] += n
                if kept:
                    counts[1] += n
                else:
                    dropped[service] = dropped.get(service, 0) + n
        return dropped

    def _export_in(self) -> None:
        for encoding, n in self._messages.items():
            metrics.MESSAGES_IN.labels(encoding).inc(n)
        for service, (spans, size) in self._in.items():
            metrics.SPANS_IN.labels(service).inc(spans)
            metrics.BYTES_IN.labels(service).inc(size)
        self._messages.clear()
        self._in.clear()

    def tick(self) -> str | None:
        """Export the counts; every ``interval`` seconds return the volume line to log."""
        self._export_in()
        current = _copy(self.stats.services)
        for service, d in volume_delta(current, self._exported).items():
            if d.bytes_kept:
                metrics.BYTES_KEPT.labels(service).inc(d.bytes_kept)
        self._exported = current
        elapsed = self.clock.now() - self._reported_at
        if elapsed < self.interval:
            return None
        line = volume_line(volume_delta(current, self._reported), elapsed)
        self._reported, self._reported_at = current, self.clock.now()
        return line
