"""LatencySketch: relative-error quantiles, order-independent merge, round trips."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.checked import StateError
from pipeline.windows.latency_sketch import LatencySketch

values = st.lists(
    st.floats(min_value=1e-6, max_value=1e7, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=300,
)
quantiles = st.sampled_from([0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0])


def sketch_of(vals: list[float], **kwargs: float) -> LatencySketch:
    sketch = LatencySketch(**kwargs)  # type: ignore[arg-type]
    for v in vals:
        sketch.add(v)
    return sketch


def exact_quantile(vals: list[float], q: float) -> float:
    ordered = sorted(vals)
    return ordered[math.floor(q * (len(ordered) - 1))]


@settings(max_examples=300, deadline=None)
@given(values, quantiles)
def test_quantile_within_relative_accuracy(vals: list[float], q: float) -> None:
    sketch = sketch_of(vals)
    exact = exact_quantile(vals, q)
    assert abs(sketch.quantile(q) - exact) <= sketch.relative_accuracy * exact * (1 + 1e-9)


@settings(max_examples=200, deadline=None)
@given(values, values)
def test_merge_equals_sketch_of_concatenation(a: list[float], b: list[float]) -> None:
    merged = sketch_of(a)
    merged.merge(sketch_of(b))
    assert merged == sketch_of(a + b)
    assert merged.to_dict() == sketch_of(b + a).to_dict()


@settings(max_examples=200, deadline=None)
@given(values, values)
def test_merge_with_folding_is_order_independent(a: list[float], b: list[float]) -> None:
    merged = sketch_of(a, max_bins=8)
    merged.merge(sketch_of(b, max_bins=8))
    assert merged == sketch_of(sorted(a + b, reverse=True), max_bins=8)
    assert len(merged.to_dict()["c"]) <= 8


@settings(max_examples=200, deadline=None)
@given(values)
def test_json_round_trip(vals: list[float]) -> None:
    sketch = sketch_of(vals)
    raw = json.dumps(sketch.to_dict())
    back = LatencySketch.from_dict(json.loads(raw))
    assert back == sketch
    assert json.dumps(back.to_dict()) == raw
    assert back.quantile(0.99) == sketch.quantile(0.99)


def test_folding_keeps_high_quantiles_accurate() -> None:
    vals = [10.0**e for e in range(-5, 7)] * 10
    sketch = sketch_of(vals, max_bins=4)
    assert len(sketch.to_dict()["c"]) == 4
    assert sketch.count == len(vals)
    assert sketch.quantile(1.0) == 1e6
    assert abs(sketch.quantile(0.95) - 1e6) <= 0.01 * 1e6


@pytest.mark.parametrize(
    ("vals", "q", "expected"),
    [
        ([], 0.5, 0.0),
        ([0.0, 0.0, 5.0], 0.5, 0.0),
        ([-3.0], 0.5, 0.0),  # negative durations (skewed clocks) count as zero
        ([7.0], 0.0, 7.0),
        ([7.0], 1.0, 7.0),
    ],
)
def test_edge_values(vals: list[float], q: float, expected: float) -> None:
    sketch = sketch_of(vals)
    assert sketch.count == len(vals)
    assert sketch.quantile(q) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"relative_accuracy": 0.0}, "relative_accuracy"), ({"max_bins": 0}, "max_bins")],
)
def test_rejects_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LatencySketch(**kwargs)  # type: ignore[arg-type]


def test_rejects_merge_of_different_accuracy() -> None:
    with pytest.raises(ValueError, match="accuracy"):
        sketch_of([1.0]).merge(sketch_of([1.0], relative_accuracy=0.02))


@pytest.mark.parametrize("q", [-0.1, 1.5])
def test_rejects_quantile_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="quantile"):
        sketch_of([1.0]).quantile(q)


def stored(**changes: object) -> dict[str, object]:
    """A sketch's dict (as a partial or the windows table carries it), with changes."""
    return {**sketch_of([1.0, 2.0, 50.0]).to_dict(), **changes}


@pytest.mark.parametrize(
    "data",
    [
        stored(a=0.0),
        stored(a=math.nan),
        stored(a="0.01"),
        stored(m=10**9),  # a bound on the memory a record can claim
        stored(m=0),
        stored(k=[1, 2], c=[1]),
        stored(k=[10**6], c=[3], z=0),  # gamma**key overflowed in quantile(): every close failed
        stored(k=[5, 0, 1], c=[1, 1, 1], z=0),  # keys not increasing
        stored(k=list(range(5000)), c=[1] * 5000, n=5000, z=0),  # more buckets than m
        stored(n=7),  # counts do not add up
        stored(c=[1, -1, 3]),
        stored(c=[True, 1, 1]),
        stored(lo=math.nan),
        stored(hi=-1.0),
        stored(extra=1),
        [1, 2, 3],
        None,
    ],
)
def test_from_dict_rejects_what_to_dict_never_writes(data: object) -> None:
    with pytest.raises(StateError):
        LatencySketch.from_dict(json.loads(json.dumps(data)))
