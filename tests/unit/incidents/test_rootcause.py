"""Root-cause ranking: where latency is added and errors originate, not where they are seen."""

from __future__ import annotations

import pytest

from pipeline.checked import StateError
from pipeline.incidents.rootcause import Baselines, rank, top_operations
from pipeline.incidents.signals import OpKey, OpStats

MS = 1_000_000
FRONT, CHECK, PAY = (
    OpKey("frontend", "POST /"),
    OpKey("checkout", "Place"),
    OpKey("payment", "Charge"),
)
EDGES = {("frontend", "checkout"), ("checkout", "payment")}


def stats(calls: int, self_ms: float, errors: int = 0, origin: int = 0) -> OpStats:
    del errors  # callers' errors: seen, not counted (they have an erroring child)
    return OpStats(calls, origin, int(calls * self_ms * MS))


def _baselines() -> Baselines:
    b = Baselines()
    for _ in range(5):
        b.learn({FRONT: stats(100, 2, 1, 1), CHECK: stats(100, 3, 1, 1), PAY: stats(100, 8, 1, 1)})
    return b


@pytest.mark.parametrize(
    ("ops", "root", "evidence"),
    [
        # payment slow: callers' spans are longer, their self time is not
        ({FRONT: stats(100, 2.1), CHECK: stats(100, 3.1), PAY: stats(100, 40)}, "payment",
         "self time 5.0x"),
        # payment fails: callers fail too, but with an erroring child
        ({FRONT: stats(100, 2, 50, 1), CHECK: stats(100, 3, 50, 0), PAY: stats(100, 8, 50, 50)},
         "payment", "50 of 100 calls fail here"),
        # errors in checkout, and noise latency elsewhere: errors lead
        ({FRONT: stats(100, 2.9), CHECK: stats(100, 3, 30, 30), PAY: stats(100, 8)}, "checkout",
         "30 of 100"),
    ],
)  # fmt: skip
def test_the_origin_ranks_first(ops: dict[OpKey, OpStats], root: str, evidence: str) -> None:
    ranking = rank(ops, _baselines(), EDGES, {"frontend": 0, "checkout": 0})
    assert ranking[0].service == root
    assert evidence in ranking[0].evidence
    assert top_operations(ops, _baselines())[0].service == root


def test_evidence_names_the_callers_that_inherit() -> None:
    ops = {FRONT: stats(100, 2), CHECK: stats(100, 3), PAY: stats(100, 40)}
    top = rank(ops, _baselines(), EDGES, {"checkout": 0, "frontend": 0})[0]
    assert top.evidence.endswith("callers checkout inherit it")


def test_first_to_alert_breaks_a_tie() -> None:
    ops = {CHECK: stats(100, 6), PAY: stats(100, 16)}
    b = Baselines()
    b.learn({CHECK: stats(100, 3), PAY: stats(100, 8)})
    shares = {c.service: c.score for c in rank(ops, b, EDGES, {"checkout": 0, "payment": 60})}
    assert shares["checkout"] > 0.05 and shares["payment"] > shares["checkout"]


def test_unknown_operations_are_not_candidates() -> None:
    assert rank({OpKey("new", "x"): stats(10, 100)}, _baselines(), EDGES, {}) == []


def test_baselines_round_trip_and_reject_garbage() -> None:
    b = _baselines()
    assert Baselines.from_dict(b.to_dict()).to_dict() == b.to_dict()
    for bad in ({}, [["a", "b", 1.0, 2.0, 3.0]], [["a", 1, 1.0, 0.0, 3.0]], [[1]]):
        with pytest.raises(StateError):
            Baselines.from_dict(bad)
