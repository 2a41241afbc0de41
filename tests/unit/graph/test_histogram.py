"""histogram: sketch_of equals adding each value; buckets count each value once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.graph.histogram import BOUNDS_S, buckets, sketch_of
from pipeline.windows.latency_sketch import LatencySketch

durations = st.lists(st.integers(-(10**9), 10**14), max_size=200)


@given(durations)
def test_sketch_of_equals_adding_each_value(values: list[int]) -> None:
    added = LatencySketch()
    for v in values:
        added.add(max(v, 0) / 1_000_000)
    assert sketch_of(values) == added


@given(durations)
def test_buckets_count_each_value_once(values: list[int]) -> None:
    counts, total_s = buckets(sketch_of(values))
    assert len(counts) == len(BOUNDS_S) + 1 and sum(counts) == len(values)
    assert total_s >= 0.0
