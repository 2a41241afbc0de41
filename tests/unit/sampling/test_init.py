"""The standard policy order: the most specific reason is the one recorded."""

from __future__ import annotations

from pipeline.clock import ManualClock
from pipeline.sampling import (
    AnomalyFlags,
    Decision,
    ExemplarRequests,
    LatencyState,
    PolicySet,
    standard_policies,
)
from tests.unit.sampling.spans import span, tid, trace_of


def test_standard_order_and_reasons() -> None:
    flags, wanted = AnomalyFlags(), ExemplarRequests(ManualClock())
    policies = PolicySet(standard_policies(1.0, LatencyState(), flags, wanted))
    assert [p.name for p in policies.policies] == [
        "exemplar",
        "errors",
        "anomaly",
        "latency",
        "probabilistic",
    ]
    assert [type(o).__name__ for o in policies.observers] == ["LatencyPolicy"]
    wanted.request(tid(1))
    flags.flag("api", "GET /", until_ns=10)
    cases = {
        tid(1): trace_of(span(trace=tid(1), error=True), trace_id=tid(1)),
        tid(2): trace_of(span(trace=tid(2), error=True), trace_id=tid(2)),
        tid(3): trace_of(span(trace=tid(3)), trace_id=tid(3)),
        tid(4): trace_of(span(trace=tid(4), start_ns=99), trace_id=tid(4)),
    }
    reasons = {t: policies.decide(trace) for t, trace in cases.items()}
    assert {t: v.policy for t, v in reasons.items()} == {
        tid(1): "exemplar",
        tid(2): "errors",
        tid(3): "anomaly",
        tid(4): "probabilistic",
    }
    assert all(v.decision is Decision.KEEP for v in reasons.values())
