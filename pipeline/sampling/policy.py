"""The sampling vocabulary: a trace under decision, a policy, and how policies combine.

A :class:`Policy` looks at one buffered :class:`TraceData` and answers
:attr:`Decision.KEEP` or :attr:`Decision.DROP`. :func:`decide` asks the policies
in order and the first KEEP wins; its name is recorded as the reason, so a
stored decision tells which policy kept the trace. Policies that learn from the
traffic (the latency policy) also implement :class:`Observer`;
:meth:`PolicySet.decide` feeds them every trace *after* deciding, whichever
policy won, so learning sees all traffic and a trace is never judged against a
threshold it moved itself.

>>> from pipeline.sampling.errors import ErrorPolicy
>>> from pipeline.sampling.probabilistic import ProbabilisticPolicy
>>> trace = TraceData("ab" * 16)
>>> PolicySet([ErrorPolicy(), ProbabilisticPolicy(1.0)]).decide(trace)
Verdict(decision=<Decision.KEEP: 'keep'>, policy='probabilistic')
>>> PolicySet([ErrorPolicy()]).decide(trace)
Verdict(decision=<Decision.DROP: 'drop'>, policy=None)
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from pipeline.model import SpanHead


class Decision(enum.Enum):
    """A policy's or the sampler's answer for one trace."""

    KEEP = "keep"
    DROP = "drop"


@dataclass(slots=True)
class TraceData:
    """The spans of one trace gathered so far, and when they arrived (processing time).

    ``first_arrival``/``last_arrival`` are :class:`~pipeline.clock.Clock` readings
    in seconds; ``refs`` names the source messages that contributed spans. The
    spans are heads (:class:`~pipeline.model.SpanHead`).
    """

    trace_id: str
    spans: list[SpanHead] = field(default_factory=list)
    first_arrival: float = 0.0
    last_arrival: float = 0.0
    refs: set[Hashable] = field(default_factory=set)

    @property
    def span_count(self) -> int:
        """How many spans have arrived for this trace."""
        return len(self.spans)

    def root(self) -> SpanHead | None:
        """The span without a parent, if it has arrived."""
        return next((s for s in self.spans if not s.parent_span_id), None)

    def representative(self) -> SpanHead | None:
        """The span that stands for the whole trace: its root, else its longest span.

        A slow trace's root ends (and is exported) last, so it is often missing
        at decision time; the longest span that did arrive is the best stand-in.
        Ties go to the earliest-arrived span so the choice is deterministic.
        """
        root = self.root()
        if root is not None:
            return root
        return max(self.spans, key=lambda s: s.duration_ns, default=None)


class Policy(Protocol):
    """One sampling rule: pure with respect to the trace, named for the record."""

    name: str

    def evaluate(self, trace: TraceData) -> Decision:
        """KEEP when this rule wants the trace stored, DROP when it has no reason to."""
        ...


@runtime_checkable
class Observer(Protocol):
    """A policy that learns from every trace after the decision was made."""

    def observe(self, trace: TraceData) -> None:
        """Update learned state with a decided trace."""
        ...


class Verdict(NamedTuple):
    """The combined decision and the name of the policy that kept the trace (None on DROP)."""

    decision: Decision
    policy: str | None


DROPPED = Verdict(Decision.DROP, None)


def first_keep(policies: Iterable[Policy], trace: TraceData) -> Verdict:
    """The first policy answering KEEP, in order; DROP when none does. Learns nothing."""
    for policy in policies:
        if policy.evaluate(trace) is Decision.KEEP:
            return Verdict(Decision.KEEP, policy.name)
    return DROPPED


class PolicySet:
    """Policies in priority order, with the learning ones among them found once.

    (A runtime protocol check per trace would cost more than the policies.)
    """

    def __init__(self, policies: Iterable[Policy]) -> None:
        self.policies = tuple(policies)
        self.observers = tuple(p for p in self.policies if isinstance(p, Observer))

    def decide(self, trace: TraceData) -> Verdict:
        """Decide one trace (first KEEP wins), then let every learning policy observe it."""
        verdict = first_keep(self.policies, trace)
        self.observe(trace)
        return verdict

    def observe(self, trace: TraceData) -> None:
        """Show spans to the learning policies without deciding (e.g. late fragments)."""
        for observer in self.observers:
            observer.observe(trace)
