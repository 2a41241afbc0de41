"""The pure heart of the ingest stage: one worker's view of its input partitions.

For each record it decodes the spans, feeds the partition's window partials
and the trace buffer, and says how many traces the record waits for; it hands
out decided traces and due cuts of window partials. It never talks to Kafka or
ClickHouse and keeps no commit state: :mod:`pipeline.ingest.loop` performs the
I/O and :mod:`pipeline.ingest.commit` decides when a record may be committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from pipeline import metrics
from pipeline.clock import Clock
from pipeline.enrich import Enricher
from pipeline.errors import DecodeError
from pipeline.graph.aggregate import GraphAggregator
from pipeline.ingest.exemplars import ExemplarBudget
from pipeline.ingest.progress import Progress
from pipeline.otlp.decode import Decoded, decode_message
from pipeline.sampling.buffer import Cause, DecidedTrace, TraceBuffer
from pipeline.sampling.exemplar import ExemplarRequests
from pipeline.spanmetrics.counts import SpanMetrics
from pipeline.windows.partial import Partial, PartialAggregator

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class DeadLetter:
    """A record that could not be decoded (or a trace that could not be stored), with why.

    A record goes to the DLQ unchanged (cut if too long to carry, see
    :mod:`pipeline.ingest.deadletter`, which counts ``attempts`` and waits until
    ``retry_at``); ``refs`` are the (partition, offset) refs it holds back, the
    record itself when empty.
    """

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    reason: str
    detail: str
    refs: tuple[Hashable, ...] = ()
    attempts: int = 0
    retry_at: float = 0.0


@dataclass(frozen=True)
class Cut:
    """Window partials of one partition up to ``offset``; ``announced`` if its intent is
    already committed (a cut repeated at the intent a previous owner left)."""

    partition: int
    offset: int
    partials: tuple[Partial, ...]
    announced: bool


@dataclass
class _Partition:
    aggregator: PartialAggregator
    last_cut_at: float
    last_offset: int = -1
    #: a cut announced by the previous owner, to repeat at exactly this offset
    recovered_intent: int | None = None
    forced: list[Cut] = field(default_factory=list)
    exemplar_budget: ExemplarBudget = field(default_factory=ExemplarBudget)
    #: offsets the previous owner decided ahead of its commit (``x``): aggregate only
    ahead: Progress = field(default_factory=Progress)
    #: records up to here are cut one by one (assigned without marks: see ``assign``)
    recut_through: int = -1


class IngestCore:
    """Decode, sample and aggregate the records of the partitions this worker owns."""

    def __init__(
        self,
        *,
        buffer: TraceBuffer,
        enricher: Enricher,
        clock: Clock,
        window_seconds: int,
        max_message_bytes: int,
        cut_interval_seconds: float = 1.0,
        max_exemplars: int = 3,
        exemplars: ExemplarRequests | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        graph: GraphAggregator | None = None,
        thresholds: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        #: Unix time in ns (span timestamps are Unix time; ``clock`` is monotonic).
        self.wall_ns = wall_ns
        self.buffer = buffer
        self.exemplars = exemplars
        self.enricher = enricher
        self.clock = clock
        self.window_seconds = window_seconds
        self.max_message_bytes = max_message_bytes
        self.cut_interval = cut_interval_seconds
        self.max_exemplars = max_exemplars
        #: service -> latency thresholds (ns) of its SLOs, counted exactly in the partials
        self.thresholds = thresholds
        self._parts: dict[int, _Partition] = {}
        self.orphaned_traces = 0
        #: Pre-sampling RED counts of every record aggregated: the worker's exported ones.
        self.spanmetrics: SpanMetrics = metrics.SPAN_METRICS
        #: the service graph of decided traces (None: not derived)
        self.graph = graph

    # -- assignment -----------------------------------------------------------------
    def assign(self, partition: int, marks: Progress, recut_through: int = -1) -> None:
        """Take a partition over with the marks its last owner left.

        Records at or below ``d`` are not aggregated again, a cut announced at ``i``
        is repeated at exactly that offset, and records in ``x`` are aggregated but
        not sampled (:mod:`pipeline.ingest.commit`, steps 2, 3 and 8).

        Records up to ``recut_through`` (given when offsets were reset without commit
        metadata, so the first run's cut boundaries are unknown) are cut one by one:
        the window stage drops each such partial of a record it already merged (an
        exact repeat), where a cut spanning old and new records would turn the old
        ones late. That costs a commit and a flush per record, so a new group (no
        commit at all, nothing merged before) is not given it.
        """
        agg = PartialAggregator(
            self.window_seconds,
            partition,
            self.max_exemplars,
            skip_through=marks.delivered,
            thresholds=self.thresholds,
        )
        self._parts[partition] = _Partition(
            agg,
            self.clock.now(),
            last_offset=marks.delivered,
            recovered_intent=marks.intent,
            exemplar_budget=ExemplarBudget(self.max_exemplars),
            ahead=marks,
            recut_through=recut_through,
        )

    def revoke(self, partition: int) -> None:
        """Forget a partition; its undecided traces will be replayed by the next owner."""
        self._parts.pop(partition, None)

    @property
    def partitions(self) -> list[int]:
        return sorted(self._parts)

    # -- records ----------------------------------------------------------------------
    def on_record(
        self,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        failed: DecodeError | None = None,
    ) -> tuple[Decoded | DeadLetter, int]:
        """Take one record in; returns what it decoded to and how many traces it waits for.

        A DeadLetter waits for one thing: the DLQ's acknowledgement. ``failed``: the
        consumer could not deliver the record (e.g. its batch did not decompress): it is
        dead-lettered with that error, never skipped silently.
        """
        part = self._parts[partition]
        intent = part.recovered_intent
        if intent is not None and intent < offset:
            part.recovered_intent = None
            part.forced.append(self._cut(partition, part, intent, announced=True))
        part.last_offset = offset
        try:
            if failed is not None:
                raise failed
            decoded = decode_message(
                value, headers, max_bytes=self.max_message_bytes, enricher=self.enricher
            )
        except DecodeError as exc:
            return DeadLetter(partition, offset, key, value, headers, exc.reason, exc.detail), 1
        # Spans from a clock running more than a window ahead of ours still count in
        # their window, but do not move the watermark (on-time spans would turn late).
        cap = self.wall_ns() + self.window_seconds * 1_000_000_000
        # Counted where the windows count: a record an earlier owner already cut is not
        # counted again, so a rebalance adds no spans to the spanmetrics.
        if part.aggregator.add_record(decoded.spans, offset, cap):
            self.spanmetrics.add(decoded.spans)
        if part.aggregator.through < offset <= part.recut_through:
            part.forced.append(self._cut(partition, part, offset, announced=False))
        if part.ahead.done and part.ahead.is_done(offset):
            n_traces = 0  # decided and handled by the previous owner: windows only
        else:
            n_traces = self.buffer.add(decoded.spans, (partition, offset))
        return decoded, n_traces

    # -- sampling decisions -------------------------------------------------------------
    def decided(self) -> list[DecidedTrace]:
        """Traces decided since the last call, minus those of partitions revoked meanwhile.

        Each trace also goes into the service graph: once, by the worker that owns its
        partitions when it is decided (a late fragment is only counted: the rest of its
        trace is gone).
        """
        out = []
        graph = self.graph
        for trace in self.buffer.due():
            if any(_partition(ref) in self._parts for ref in trace.refs):
                out.append(trace)
                if graph is not None:
                    graph.add_decided(trace.heads, late=trace.cause is Cause.LATE)
            else:
                self.orphaned_traces += 1
        return out

    # -- window partials ------------------------------------------------------------------
    def due_cuts(self, force: bool = False) -> list[Cut]:
        """Cuts to send now: recovered intents first, then partitions whose interval elapsed."""
        now = self.clock.now()
        cuts: list[Cut] = []
        for p, part in self._parts.items():
            cuts.extend(part.forced)
            part.forced.clear()
            if part.recovered_intent is not None and part.last_offset == part.recovered_intent:
                part.recovered_intent = None
                cuts.append(self._cut(p, part, part.last_offset, announced=True))
            elif part.last_offset > part.aggregator.through and (
                force or now - part.last_cut_at >= self.cut_interval
            ):
                cuts.append(self._cut(p, part, part.last_offset, announced=False))
        return cuts

    def _cut(self, p: int, part: _Partition, offset: int, announced: bool) -> Cut:
        """Cut partials and ask the sampler to keep their exemplars.

        Exemplars are picked per partial (errors first, then the slowest) while
        their traces still wait for a decision (cut interval < decision wait),
        so every exemplar an alert names is stored.
        """
        part.last_cut_at = self.clock.now()
        partials = tuple(part.aggregator.cut(offset))
        self._count_overflow(partials)
        if self.exemplars is not None:
            partials = tuple(self._admit_exemplars(part, x) for x in partials)
        return Cut(p, offset, partials, announced)

    def _count_overflow(self, partials: Sequence[Partial]) -> None:
        """Export how many spans of these partials went to the overflow names.

        Per partial, not per span: the native scan memoises the enricher's answers,
        so only the aggregates see every span.
        """
        config = self.enricher.config
        services = operations = 0
        for p in partials:
            if p.service == config.overflow_service:
                services += p.requests
            elif p.operation == config.overflow_operation:
                operations += p.requests
        if services:
            metrics.OVERFLOW_SPANS.labels("service").inc(services)
        if operations:
            metrics.OVERFLOW_SPANS.labels("operation").inc(operations)
        metrics.SERVICES_ADMITTED.set(self.enricher.admitted_services)

    def _admit_exemplars(self, part: _Partition, partial: Partial) -> Partial:
        """Request the partial's exemplars that make its window's budget; name only those."""
        assert self.exemplars is not None
        key = (partial.series, partial.window_start_ns)
        admitted = part.exemplar_budget.admit(key, partial.exemplars)
        for exemplar in admitted:
            self.exemplars.request(exemplar.trace_id)
        return replace(partial, exemplars=admitted)


def _partition(ref: Hashable) -> int:
    assert isinstance(ref, tuple)
    return int(ref[0])
