"""The trace buffer and decision timer: gather a trace's spans, decide it once it is quiet.

Spans of one trace arrive over time, in several messages. :meth:`TraceBuffer.add`
files them by trace id; a trace is decided ``decision_wait_seconds`` (processing
time, from the injected clock) after its *last* span arrived, so a trace that
keeps growing keeps waiting. :meth:`TraceBuffer.due` returns everything decided
since the previous call, as :class:`DecidedTrace` values naming the decision,
the policy that kept it, its spans and the source refs that contributed.

Memory bound: past ``max_traces`` pending traces or ``max_spans`` pending spans,
the trace that has been quiet longest (the one nearest its deadline) is decided
at once with cause ``CAPACITY`` and counted in ``stats.decided_early``.

Late spans: a bounded LRU of recent decisions (``max_decided``) makes spans
that arrive after their trace was decided follow the earlier decision, as a
``LATE`` fragment from the next :meth:`due` call; they are never dropped
silently. A trace that fell out of that cache is buffered and decided afresh
(the hash baseline still agrees; rule-based policies judge only the fragment).

>>> from pipeline.clock import ManualClock
>>> from pipeline.sampling.errors import ErrorPolicy
>>> clock = ManualClock()
>>> buf = TraceBuffer(5.0, clock, [ErrorPolicy()])
>>> buf.due(), len(buf)
([], 0)
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import groupby
from operator import attrgetter

from pipeline.clock import Clock
from pipeline.model import Span, SpanHead
from pipeline.otlp.heads import to_span
from pipeline.sampling.counters import SamplingStats
from pipeline.sampling.policy import Decision, Policy, PolicySet, TraceData, Verdict

_trace_id = attrgetter("trace_id")


class Cause(enum.Enum):
    """Why a trace was decided when it was."""

    TIMER = "timer"  # decision_wait elapsed after its last span
    CAPACITY = "capacity"  # decided early: the buffer was over its bounds
    FLUSH = "flush"  # shutdown
    LATE = "late"  # spans after the decision; they follow the cached one


@dataclass(frozen=True)
class DecidedTrace:
    """A decided trace (or late fragment): its verdict, spans and contributing refs."""

    trace_id: str
    decision: Decision
    #: Name of the policy that kept it; None when dropped.
    policy: str | None
    #: What sampling read of each span (heads, as decoded).
    heads: tuple[SpanHead, ...]
    refs: frozenset[Hashable]
    cause: Cause

    @cached_property
    def spans(self) -> tuple[Span, ...]:
        """The full spans, built on first use: only kept traces need them."""
        return tuple(map(to_span, self.heads))

    @property
    def kept(self) -> bool:
        """Whether the spans should be stored."""
        return self.decision is Decision.KEEP


class TraceBuffer:
    """Pending traces in order of their last arrival, plus the recent-decision cache."""

    def __init__(
        self,
        decision_wait_seconds: float,
        clock: Clock,
        policies: Sequence[Policy],
        max_traces: int = 50_000,
        max_spans: int = 1_000_000,
        max_decided: int = 200_000,
        stats: SamplingStats | None = None,
    ) -> None:
        if decision_wait_seconds < 0 or min(max_traces, max_spans, max_decided) < 1:
            raise ValueError("decision wait must be >= 0 and every bound >= 1")
        self.decision_wait = decision_wait_seconds
        self.policies = PolicySet(policies)
        self.max_traces = max_traces
        self.max_spans = max_spans
        self.max_decided = max_decided
        self.stats = stats if stats is not None else SamplingStats()
        self._clock = clock
        # Ordered by last arrival (moved to the end on every add): the front is
        # always the next trace due, so due() never scans the whole buffer.
        self._pending: OrderedDict[str, TraceData] = OrderedDict()
        self._pending_spans = 0
        self._decided: OrderedDict[str, Verdict] = OrderedDict()
        self._ready: list[DecidedTrace] = []

    def __len__(self) -> int:
        """Number of pending (undecided) traces."""
        return len(self._pending)

    @property
    def pending_spans(self) -> int:
        """Number of spans held in pending traces."""
        return self._pending_spans

    def is_pending(self, trace_id: str) -> bool:
        """Whether a trace is buffered and not yet decided."""
        return trace_id in self._pending

    def decided(self, trace_id: str) -> Verdict | None:
        """The cached decision of a recently decided trace, if any."""
        return self._decided.get(trace_id)

    def add(self, spans: Iterable[SpanHead], ref: Hashable) -> int:
        """File one message's spans; returns how many distinct traces they belong to.

        ``ref`` must identify the message uniquely (e.g. ``(partition, offset)``):
        a message added again while its traces are pending adds no spans twice.

        Every one of those traces later comes out of :meth:`due` exactly once
        carrying ``ref``, which is what :class:`~pipeline.ingest.tracker.MessageTracker`
        counts on.
        """
        groups: dict[str, list[SpanHead]] = {}
        # A message's spans of one trace mostly come together: one step per run.
        for trace_id, run in groupby(spans, _trace_id):
            groups.setdefault(trace_id, []).extend(run)
        now = self._clock.now()
        for trace_id, group in groups.items():
            verdict = self._decided.get(trace_id)
            if verdict is None:
                self._buffer(trace_id, group, ref, now)
            else:
                self.stats.record_in(group)
                self._decided.move_to_end(trace_id)
                self._ready.append(self._late(trace_id, group, ref, verdict))
        self._enforce_bounds()
        return len(groups)

    def due(self) -> list[DecidedTrace]:
        """Everything decided since the last call: late fragments, early and timed-out traces."""
        deadline = self._clock.now() - self.decision_wait
        while self._pending:
            trace = next(iter(self._pending.values()))
            if trace.last_arrival > deadline:
                break
            self._decide_front(Cause.TIMER)
        ready, self._ready = self._ready, []
        return ready

    def flush_all(self) -> list[DecidedTrace]:
        """Decide every pending trace now (shutdown) and return all that is ready."""
        while self._pending:
            self._decide_front(Cause.FLUSH)
        ready, self._ready = self._ready, []
        return ready

    def _buffer(self, trace_id: str, spans: list[SpanHead], ref: Hashable, now: float) -> None:
        trace = self._pending.get(trace_id)
        if trace is None:
            trace = TraceData(trace_id, first_arrival=now)
            self._pending[trace_id] = trace
        elif ref in trace.refs:
            # The same message again (redelivered after a seek or rebalance):
            # its spans are already here.
            return
        else:
            self._pending.move_to_end(trace_id)
        self.stats.record_in(spans)
        trace.spans.extend(spans)
        trace.refs.add(ref)
        trace.last_arrival = now
        self._pending_spans += len(spans)

    def _enforce_bounds(self) -> None:
        while self._pending and (
            len(self._pending) > self.max_traces or self._pending_spans > self.max_spans
        ):
            self._decide_front(Cause.CAPACITY)
            self.stats.decided_early += 1

    def _decide_front(self, cause: Cause) -> None:
        _, trace = self._pending.popitem(last=False)
        self._pending_spans -= trace.span_count
        verdict = self.policies.decide(trace)
        self._remember(trace.trace_id, verdict)
        self._count(verdict, trace.spans)
        self._ready.append(
            DecidedTrace(
                trace.trace_id,
                verdict.decision,
                verdict.policy,
                tuple(trace.spans),
                frozenset(trace.refs),
                cause,
            )
        )

    def _late(
        self, trace_id: str, spans: list[SpanHead], ref: Hashable, verdict: Verdict
    ) -> DecidedTrace:
        fragment = TraceData(trace_id, spans, refs={ref})
        # Late spans are still traffic: learning policies see them too.
        self.policies.observe(fragment)
        self.stats.late_spans += len(spans)
        self._count(verdict, spans)
        return DecidedTrace(
            trace_id, verdict.decision, verdict.policy, tuple(spans), frozenset({ref}), Cause.LATE
        )

    def _remember(self, trace_id: str, verdict: Verdict) -> None:
        self._decided[trace_id] = verdict
        if len(self._decided) > self.max_decided:
            self._decided.popitem(last=False)

    def _count(self, verdict: Verdict, spans: Sequence[SpanHead]) -> None:
        if verdict.policy is None:
            self.stats.traces_dropped += 1
        else:
            self.stats.kept_by_policy[verdict.policy] += 1
            self.stats.record_kept(spans)
