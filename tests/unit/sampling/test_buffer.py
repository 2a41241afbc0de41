"""Trace buffer: decision timer after the last span, decision cache, memory bounds, flush."""

from __future__ import annotations

import pytest

from pipeline.clock import ManualClock
from pipeline.sampling.buffer import Cause, DecidedTrace, TraceBuffer
from pipeline.sampling.errors import ErrorPolicy
from pipeline.sampling.latency import LatencyPolicy
from pipeline.sampling.policy import Decision, Policy
from pipeline.sampling.probabilistic import ProbabilisticPolicy
from tests.unit.sampling.spans import span, tid

WAIT = 5.0


def make(
    policies: list[Policy] | None = None,
    max_traces: int = 50_000,
    max_spans: int = 1_000_000,
    max_decided: int = 200_000,
) -> tuple[TraceBuffer, ManualClock]:
    clock = ManualClock()
    policies = policies or [ErrorPolicy()]
    buf = TraceBuffer(WAIT, clock, policies, max_traces, max_spans, max_decided)
    return buf, clock


def ids(decided: list[DecidedTrace]) -> list[str]:
    return [d.trace_id for d in decided]


@pytest.mark.parametrize(
    ("arrivals", "check_at", "decided"),
    [
        ([0.0], 4.99, False),
        ([0.0], 5.0, True),
        ([0.0, 3.0], 5.0, False),  # the second span restarted the wait
        ([0.0, 3.0], 7.99, False),
        ([0.0, 3.0], 8.0, True),
        ([0.0, 1.0, 2.0, 3.0, 4.0], 8.5, False),
        ([0.0, 1.0, 2.0, 3.0, 4.0], 9.0, True),
    ],
)
def test_decided_decision_wait_after_last_span(
    arrivals: list[float], check_at: float, decided: bool
) -> None:
    buf, clock = make()
    for i, at in enumerate(arrivals):
        clock.advance(at - clock.now())
        assert buf.due() == []
        buf.add([span(span_id=f"{i:016x}")], ref=(0, i))
    clock.advance(check_at - clock.now())
    out = buf.due()
    assert bool(out) is decided
    if decided:
        (trace,) = out
        assert len(trace.spans) == len(arrivals)
        assert trace.refs == {(0, i) for i in range(len(arrivals))}
        assert trace.cause is Cause.TIMER


def test_due_returns_each_trace_once() -> None:
    buf, clock = make()
    buf.add([span()], ref="m")
    clock.advance(WAIT)
    assert len(buf.due()) == 1
    assert buf.due() == []


def test_one_message_many_traces_and_one_trace_many_messages() -> None:
    buf, clock = make()
    n = buf.add([span(trace=tid(1)), span(trace=tid(2)), span(trace=tid(1), span_id="2" * 16)], 1)
    assert n == 2
    clock.advance(1)
    assert buf.add([span(trace=tid(2), span_id="3" * 16)], 2) == 1
    clock.advance(WAIT - 1)
    first = buf.due()
    assert [(d.trace_id, len(d.spans), d.refs) for d in first] == [(tid(1), 2, {1})]
    clock.advance(1)
    second = buf.due()
    assert [(d.trace_id, len(d.spans), d.refs) for d in second] == [(tid(2), 2, {1, 2})]


def test_verdict_names_the_keeping_policy() -> None:
    buf, clock = make([ErrorPolicy(), ProbabilisticPolicy(1.0)])
    buf.add([span(trace=tid(1), error=True), span(trace=tid(2))], "m")
    clock.advance(WAIT)
    assert {d.trace_id: (d.decision, d.policy) for d in buf.due()} == {
        tid(1): (Decision.KEEP, "errors"),
        tid(2): (Decision.KEEP, "probabilistic"),
    }


@pytest.mark.parametrize(
    ("first_error", "late_error", "expected"),
    [
        (True, False, Decision.KEEP),
        (False, False, Decision.DROP),
        # The earlier decision stands: the stored part must not become a stray fragment.
        (False, True, Decision.DROP),
    ],
)
def test_late_spans_follow_the_cached_decision(
    first_error: bool, late_error: bool, expected: Decision
) -> None:
    buf, clock = make()
    buf.add([span(error=first_error)], ref="m1")
    clock.advance(WAIT)
    (decided,) = buf.due()
    buf.add([span(span_id="2" * 16, error=late_error)], ref="m2")
    assert not buf.is_pending(decided.trace_id)
    (late,) = buf.due()  # no wait for late spans
    assert (late.decision, late.cause, late.refs) == (expected, Cause.LATE, {"m2"})
    assert late.policy == decided.policy
    assert buf.stats.late_spans == 1


def test_decision_cache_is_bounded() -> None:
    buf, clock = make(max_decided=1)
    buf.add([span(trace=tid(1)), span(trace=tid(2))], "m")
    clock.advance(WAIT)
    assert len(buf.due()) == 2
    assert buf.decided(tid(1)) is None and buf.decided(tid(2)) is not None
    buf.add([span(trace=tid(1), span_id="2" * 16)], "late")
    assert buf.is_pending(tid(1))  # fell out of the cache: buffered and decided afresh


def test_max_traces_decides_least_recently_updated_early() -> None:
    buf, clock = make(max_traces=2)
    buf.add([span(trace=tid(1))], 1)
    buf.add([span(trace=tid(2))], 2)
    clock.advance(1)
    buf.add([span(trace=tid(1), span_id="2" * 16)], 3)
    buf.add([span(trace=tid(3))], 4)
    out = buf.due()
    assert [(d.trace_id, d.cause) for d in out] == [(tid(2), Cause.CAPACITY)]
    assert (len(buf), buf.stats.decided_early) == (2, 1)


def test_max_spans_bounds_pending_spans() -> None:
    buf, _ = make(max_spans=3)
    buf.add([span(trace=tid(1)), span(trace=tid(1), span_id="2" * 16)], 1)
    buf.add([span(trace=tid(2)), span(trace=tid(2), span_id="2" * 16)], 2)
    assert ids(buf.due()) == [tid(1)]
    assert buf.pending_spans == 2


def test_flush_all_decides_everything() -> None:
    buf, _ = make()
    buf.add([span(trace=tid(i)) for i in range(10)], "m")
    out = buf.flush_all()
    assert sorted(ids(out)) == [tid(i) for i in range(10)]
    assert {d.cause for d in out} == {Cause.FLUSH}
    assert (len(buf), buf.pending_spans) == (0, 0)


def test_stats_count_volume_in_and_kept_per_service() -> None:
    buf, clock = make()
    buf.add([span(trace=tid(1), service="a", error=True), span(trace=tid(2), service="b")], 1)
    clock.advance(WAIT)
    buf.due()
    a, b = buf.stats.services["a"], buf.stats.services["b"]
    assert (a.spans_in, a.spans_kept, b.spans_in, b.spans_kept) == (1, 1, 1, 0)
    assert a.bytes_kept == a.bytes_in > 0 and b.bytes_kept == 0
    assert buf.stats.kept_by_policy["errors"] == 1 and buf.stats.traces_dropped == 1
    assert buf.stats.kept_ratio("a") == 1.0


def test_latency_learns_from_every_trace_and_late_fragment() -> None:
    latency = LatencyPolicy()
    buf, clock = make([ErrorPolicy(), latency])
    buf.add([span(trace=tid(1), error=True), span(trace=tid(2))], 1)
    clock.advance(WAIT)
    buf.due()
    buf.add([span(trace=tid(1), span_id="2" * 16)], 2)
    buf.due()
    assert latency.state.samples("api", "GET /") == 3


@pytest.mark.parametrize(
    ("wait", "bounds"), [(-1.0, (1, 1, 1)), (5.0, (0, 1, 1)), (5.0, (1, 1, 0))]
)
def test_rejects_bad_bounds(wait: float, bounds: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        TraceBuffer(wait, ManualClock(), [ErrorPolicy()], *bounds)


def test_redelivered_message_adds_no_duplicate_spans() -> None:
    buf, clock = make()
    message = [span(trace=tid(1)), span(trace=tid(2))]
    assert buf.add(message, (0, 7)) == 2
    assert buf.add(message, (0, 7)) == 2  # still counted: each trace resolves the ref once
    clock.advance(WAIT)
    assert sorted((d.trace_id, len(d.spans)) for d in buf.due()) == [(tid(1), 1), (tid(2), 1)]
    assert buf.pending_spans == 0
    assert buf.stats.services["api"].spans_in == 2
