"""Latency policy: per-operation learned p99, min samples, floor/ceiling, state round trip."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.sampling.latency import LatencyPolicy, LatencyState
from pipeline.sampling.policy import Decision, PolicySet
from tests.unit.sampling.spans import MS, span, trace_of

K, D = Decision.KEEP, Decision.DROP


def learned(durations_ms: list[float], service: str = "api", op: str = "GET /") -> LatencyState:
    state = LatencyState()
    for d in durations_ms:
        state.observe(service, op, int(d * MS))
    return state


UNIFORM_1_100 = [float(i % 100 + 1) for i in range(1000)]  # p99 ~ 99 ms


@pytest.mark.parametrize(
    ("history_ms", "policy_kwargs", "trace_spans", "expected"),
    [
        ([], {}, [], D),
        ([], {}, [span(duration_ms=10_000)], D),  # nothing learned yet
        ([], {"ceiling_ns": 1000 * MS}, [span(duration_ms=1500)], K),  # ceiling needs no learning
        ([50.0] * 99, {}, [span(duration_ms=10_000)], D),  # below min_samples
        ([50.0] * 99, {"min_samples": 50}, [span(duration_ms=10_000)], K),
        (UNIFORM_1_100, {}, [span(duration_ms=500)], K),
        (UNIFORM_1_100, {}, [span(duration_ms=50)], D),
        (UNIFORM_1_100, {}, [span(duration_ms=99)], D),  # inside the p99 bucket
        (UNIFORM_1_100, {"ceiling_ns": 20 * MS}, [span(duration_ms=50)], K),
        ([1.0] * 500, {}, [span(duration_ms=3)], K),
        ([1.0] * 500, {"floor_ns": 5 * MS}, [span(duration_ms=3)], D),
        ([1.0] * 500, {"floor_ns": 5 * MS}, [span(duration_ms=6)], K),
        # Root present: judged on the root even if a child is slower than the op's p99.
        (
            UNIFORM_1_100,
            {},
            [span(span_id="r", duration_ms=50), span(span_id="c", parent="r", duration_ms=900)],
            D,
        ),
        # No root: the longest span stands in.
        (
            UNIFORM_1_100,
            {},
            [
                span(span_id="c1", parent="r", duration_ms=5),
                span(span_id="c2", parent="r", duration_ms=700),
            ],
            K,
        ),
        # Another operation's history says nothing about this one.
        (UNIFORM_1_100, {}, [span(operation="POST /x", duration_ms=5000)], D),
    ],
)
def test_latency_policy(
    history_ms: list[float], policy_kwargs: dict, trace_spans: list, expected: Decision
) -> None:
    policy = LatencyPolicy(learned(history_ms), **policy_kwargs)
    assert policy.evaluate(trace_of(*trace_spans)) is expected


def test_decides_before_learning_from_the_same_trace() -> None:
    policy = LatencyPolicy(learned([10.0] * 99), min_samples=100)
    trace = trace_of(span(duration_ms=10_000))
    assert PolicySet([policy]).decide(trace).decision is D  # judged with 99 samples
    assert policy.state.samples("api", "GET /") == 100  # then learned


def test_observe_learns_every_span_under_its_own_operation() -> None:
    policy = LatencyPolicy()
    policy.observe(
        trace_of(span(span_id="r"), span(span_id="c", parent="r", service="db", operation="q"))
    )
    assert policy.state.samples("api", "GET /") == 1
    assert policy.state.samples("db", "q") == 1


def test_threshold_follows_a_latency_regime_change() -> None:
    state = LatencyState(horizon=1000)
    for _ in range(3000):
        state.observe("api", "GET /", 10 * MS)
    before = state.threshold("api", "GET /")
    for _ in range(5000):
        state.observe("api", "GET /", 200 * MS)
    after = state.threshold("api", "GET /")
    assert before < 11 * MS
    assert 200 * MS <= after < 210 * MS


def test_operations_are_bounded_least_recent_first() -> None:
    state = LatencyState(max_keys=2)
    for op in ("a", "b", "a", "c"):
        state.observe("api", op, MS)
    assert len(state) == 2
    assert (state.samples("api", "a"), state.samples("api", "b")) == (2.0, 0.0)


def test_state_round_trips_through_json() -> None:
    rng = random.Random(3)
    state = LatencyState()
    for _ in range(5000):
        op = rng.choice(["GET /", "POST /pay", "q"])
        state.observe(rng.choice(["api", "db"]), op, int(rng.lognormvariate(16, 1)))
    restored = LatencyState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored.to_dict() == state.to_dict()
    for service in ("api", "db"):
        for op in ("GET /", "POST /pay", "q"):
            assert restored.threshold(service, op) == state.threshold(service, op)
            assert restored.samples(service, op) == state.samples(service, op)


def test_rejects_unknown_state_version() -> None:
    data = LatencyState().to_dict() | {"version": 99}
    with pytest.raises(ValueError, match="version"):
        LatencyState.from_dict(data)


# --- grouped observation is span-by-span observation --------------------------------------

_spans = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["x", "y", "z"]), st.integers(0, 10**9)),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_spans, min_size=1, max_size=6), st.integers(1, 8))
def test_observe_spans_equals_observing_one_by_one(
    traces: list[list[tuple[str, str, int]]], max_keys: int
) -> None:
    grouped = LatencyState(horizon=16.0, max_bins=4, max_keys=max_keys)
    one_by_one = LatencyState(horizon=16.0, max_bins=4, max_keys=max_keys)
    for trace in traces:
        spans = [span(service=s, operation=o, duration_ms=d / MS) for s, o, d in trace]
        grouped.observe_spans(spans)
        for s in spans:
            one_by_one.observe(s.service_name, s.operation, s.duration_ns)
    assert grouped.to_dict() == one_by_one.to_dict()
    assert [grouped.threshold(*k) for k in grouped._ops] == [
        one_by_one.threshold(*k) for k in one_by_one._ops
    ]
