"""Hash baseline: deterministic per trace id, rate honoured within tolerance."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from pipeline.sampling.policy import Decision, TraceData
from pipeline.sampling.probabilistic import ProbabilisticPolicy, fnv1a_64
from tests.unit.sampling.spans import tid

_RNG = random.Random(42)
IDS = [f"{_RNG.getrandbits(128):032x}" for _ in range(20_000)]


def kept_share(policy: ProbabilisticPolicy, ids: list[str]) -> float:
    return sum(policy.evaluate(TraceData(i)) is Decision.KEEP for i in ids) / len(ids)


@pytest.mark.parametrize(
    ("data", "expected"),
    [  # published FNV-1a 64 test vectors
        (b"", 0xCBF29CE484222325),
        (b"a", 0xAF63DC4C8601EC8C),
        (b"foobar", 0x85944171F73967E8),
    ],
)
def test_fnv1a_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_64(data) == expected


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.25, 0.5, 0.9])
def test_rate_within_tolerance(rate: float) -> None:
    share = kept_share(ProbabilisticPolicy(rate), IDS)
    # 4 standard deviations of a binomial share over 20k ids.
    tolerance = 4 * (rate * (1 - rate) / len(IDS)) ** 0.5
    assert abs(share - rate) < tolerance


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0.0), (1.0, 1.0)])
def test_extreme_rates_are_exact(rate: float, expected: float) -> None:
    assert kept_share(ProbabilisticPolicy(rate), IDS[:2000]) == expected


def test_same_trace_same_decision_across_instances() -> None:
    first = [ProbabilisticPolicy(0.3).evaluate(TraceData(i)) for i in IDS[:2000]]
    again = [ProbabilisticPolicy(0.3).evaluate(TraceData(i)) for i in IDS[:2000]]
    assert first == again


def test_higher_rate_keeps_a_superset() -> None:
    low, high = ProbabilisticPolicy(0.1), ProbabilisticPolicy(0.4)
    kept_low = {i for i in IDS[:5000] if low.evaluate(TraceData(i)) is Decision.KEEP}
    kept_high = {i for i in IDS[:5000] if high.evaluate(TraceData(i)) is Decision.KEEP}
    assert kept_low and kept_low <= kept_high


@pytest.mark.parametrize(
    "make_id",
    [tid, lambda i: f"{i:016x}" + "0" * 16, lambda i: "0" * 16 + f"{i:016x}"],
    ids=["sequential", "high-half-only", "64-bit-ids"],
)
def test_low_entropy_ids_sample_at_rate(make_id: Callable[[int], str]) -> None:
    share = kept_share(ProbabilisticPolicy(0.1), [make_id(i) for i in range(10_000)])
    assert abs(share - 0.1) < 4 * (0.1 * 0.9 / 10_000) ** 0.5


def test_salt_changes_the_sample() -> None:
    ids = [tid(i) for i in range(2000)]
    a = [ProbabilisticPolicy(0.5, salt="a").evaluate(TraceData(i)) for i in ids]
    b = [ProbabilisticPolicy(0.5, salt="b").evaluate(TraceData(i)) for i in ids]
    assert a != b


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rejects_bad_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        ProbabilisticPolicy(rate)


def test_malformed_id_is_still_deterministic() -> None:
    policy = ProbabilisticPolicy(0.5)
    assert policy.evaluate(TraceData("not-hex")) is policy.evaluate(TraceData("not-hex"))
