"""Composite decision: first KEEP wins and is named; learners observe every trace."""

from __future__ import annotations

import pytest

from pipeline.sampling.policy import Decision, PolicySet, TraceData, Verdict, first_keep
from tests.unit.sampling.spans import span, trace_of


class Fixed:
    """A policy with a fixed answer that records what it was asked."""

    def __init__(self, name: str, answer: Decision) -> None:
        self.name = name
        self.answer = answer
        self.asked = 0

    def evaluate(self, trace: TraceData) -> Decision:
        self.asked += 1
        return self.answer


class Learner(Fixed):
    """A fixed policy that also observes."""

    def __init__(self, name: str, answer: Decision) -> None:
        super().__init__(name, answer)
        self.observed: list[str] = []

    def observe(self, trace: TraceData) -> None:
        self.observed.append(trace.trace_id)


K, D = Decision.KEEP, Decision.DROP


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([], Verdict(D, None)),
        ([D, D], Verdict(D, None)),
        ([K], Verdict(K, "p0")),
        ([D, K, K], Verdict(K, "p1")),
        ([K, D], Verdict(K, "p0")),
    ],
)
def test_first_keep_wins_and_names_policy(answers: list[Decision], expected: Verdict) -> None:
    policies = [Fixed(f"p{i}", a) for i, a in enumerate(answers)]
    assert first_keep(policies, trace_of()) == expected


def test_later_policies_not_asked_after_keep() -> None:
    first, second = Fixed("a", K), Fixed("b", K)
    PolicySet([first, second]).decide(trace_of())
    assert (first.asked, second.asked) == (1, 0)


def test_learners_observe_even_when_an_earlier_policy_kept() -> None:
    learner = Learner("latency", D)
    policies = PolicySet([Fixed("errors", K), learner])
    assert policies.observers == (learner,)
    verdict = policies.decide(trace_of(trace_id="f" * 32))
    assert verdict == Verdict(K, "errors")
    assert learner.observed == ["f" * 32]
    assert learner.asked == 0


@pytest.mark.parametrize(
    ("spans", "expected_id"),
    [
        ([], None),
        ([span(span_id="c1", parent="r", duration_ms=5), span(span_id="r", duration_ms=1)], "r"),
        (
            [
                span(span_id="c1", parent="r", duration_ms=5),
                span(span_id="c2", parent="r", duration_ms=2),
            ],
            "c1",
        ),
        ([span(span_id="c1", parent="r"), span(span_id="c2", parent="r")], "c1"),
    ],
    ids=["empty", "root-even-if-shorter", "longest-without-root", "tie-first"],
)
def test_representative_span(spans: list, expected_id: str | None) -> None:
    rep = trace_of(*spans).representative()
    assert (rep.span_id if rep else None) == expected_id


@pytest.mark.parametrize(
    ("durations_ms", "expected"), [([5], 0), ([5, 9, 9, 1], 1), ([7, 7], 0), ([1, 3, 4], 2)]
)
def test_representative_without_root_is_the_earliest_longest(
    durations_ms: list[int], expected: int
) -> None:
    spans = [
        span(span_id=f"{i:016x}", parent="p", duration_ms=d) for i, d in enumerate(durations_ms)
    ]
    assert trace_of(*spans).representative() is spans[expected]


def test_span_count() -> None:
    assert trace_of(span(), span(span_id="2" * 16)).span_count == 2
