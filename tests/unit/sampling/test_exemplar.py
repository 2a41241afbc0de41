"""Exemplar policy: requested trace ids are kept while the request lives."""

from __future__ import annotations

import pytest

from pipeline.clock import ManualClock
from pipeline.sampling.exemplar import ExemplarPolicy, ExemplarRequests
from pipeline.sampling.policy import Decision, TraceData
from tests.unit.sampling.spans import tid


@pytest.mark.parametrize(
    ("requested", "asked", "elapsed", "expected"),
    [
        ([], tid(1), 0.0, Decision.DROP),
        ([tid(1)], tid(1), 0.0, Decision.KEEP),
        ([tid(1)], tid(2), 0.0, Decision.DROP),
        ([tid(1)], tid(1), 59.9, Decision.KEEP),
        ([tid(1)], tid(1), 60.0, Decision.DROP),  # expired
    ],
)
def test_exemplar_policy(
    requested: list[str], asked: str, elapsed: float, expected: Decision
) -> None:
    clock = ManualClock()
    requests = ExemplarRequests(clock, ttl_seconds=60)
    for trace_id in requested:
        requests.request(trace_id)
    clock.advance(elapsed)
    assert ExemplarPolicy(requests).evaluate(TraceData(asked)) is expected


def test_repeated_request_restarts_ttl() -> None:
    clock = ManualClock()
    requests = ExemplarRequests(clock, ttl_seconds=10)
    requests.request(tid(1))
    clock.advance(8)
    requests.request(tid(1))
    clock.advance(8)
    assert tid(1) in requests


def test_bounded_oldest_request_goes_first() -> None:
    requests = ExemplarRequests(ManualClock(), max_requests=3)
    for i in range(5):
        requests.request(tid(i))
    assert len(requests) == 3
    assert [tid(i) in requests for i in range(5)] == [False, False, True, True, True]


def test_expired_requests_leave_memory() -> None:
    clock = ManualClock()
    requests = ExemplarRequests(clock, ttl_seconds=1)
    for i in range(100):
        requests.request(tid(i))
    clock.advance(2)
    requests.request(tid(999))
    assert len(requests) == 1
