"""WindowAssembler.batch(): merges in memory at once, one store write per series at the end."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from pipeline.testing.clock import ManualClock
from pipeline.windows import MergeResult, Partial, PartialAggregator
from pipeline.windows.assembler import series_key
from tests.unit.windows.conftest import SpanFactory
from tests.unit.windows.test_assembler import assembler, random_spans

NS = 1_000_000_000


class CountingStore(dict[str, dict[str, Any]]):
    """A dict store that records every key written."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)


def cuts_of(span: SpanFactory, sources: int, seed: int) -> list[Partial]:
    """Partials of ``sources`` partitions, cut every 20 spans, interleaved cut by cut."""
    per_source: list[list[Partial]] = []
    for source in range(sources):
        agg = PartialAggregator(60, source)
        cuts: list[Partial] = []
        for offset, s in enumerate(random_spans(span, 400, seed=seed + source)):
            agg.add(s, offset)
            if offset % 20 == 19:
                cuts.extend(agg.cut())
        per_source.append(cuts)
    rnd = random.Random(seed)
    merged: list[Partial] = []
    while any(per_source):
        merged.append(rnd.choice([c for c in per_source if c]).pop(0))
    return merged


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_compute_what_partial_by_partial_merging_computes(
    span: SpanFactory, seed: int
) -> None:
    partials = cuts_of(span, sources=3, seed=seed)
    replays = [*partials[:40], *partials[10:30], *partials[40:]]  # a redelivered stretch
    one_clock, batch_clock = ManualClock(), ManualClock()
    one_store, batch_store = CountingStore(), CountingStore()
    one = assembler(one_clock, store=one_store, idle_close_seconds=20)
    batched = assembler(batch_clock, store=batch_store, idle_close_seconds=20)
    one_closed, batch_closed, rnd = [], [], random.Random(seed)
    i = 0
    while i < len(replays):
        chunk = replays[i : i + rnd.randint(1, 25)]
        i += len(chunk)
        one_results = [one.merge(p) for p in chunk]
        with batched.batch():
            assert [batched.merge(p) for p in chunk] == one_results
        for clock in (one_clock, batch_clock):
            clock.advance(3)
        one_closed += one.close_ready()
        batch_closed += batched.close_ready()
    assert batch_closed == one_closed and one_closed
    assert json.dumps(batch_store, sort_keys=True) == json.dumps(one_store, sort_keys=True)
    assert (batched.duplicates, batched.late_spans) == (one.duplicates, one.late_spans)
    assert len(batch_store.writes) < len(one_store.writes)


def test_the_store_sees_each_series_once_when_the_block_ends(span: SpanFactory) -> None:
    store = CountingStore()
    asm = assembler(store=store)
    cart = PartialAggregator(60, 0)
    for offset, ts in enumerate([1.0, 61.0, 121.0]):
        cart.add(span(ts, 5), offset)
    cart.add(span(2.0, 5, operation="GET /pay"), 3)
    partials = cart.cut()
    with asm.batch():
        results = [asm.merge(p) for p in [*partials, partials[0]]]
        assert store.writes == []  # nothing written inside the block
        assert asm.state("shop", "GET /cart") is not None  # but merged in memory
    assert results[-1] is MergeResult.DUPLICATE  # caught inside the same batch
    assert sorted(store.writes) == [series_key("shop", "GET /cart"), series_key("shop", "GET /pay")]


def test_what_a_failed_block_merged_is_saved(span: SpanFactory) -> None:
    store = CountingStore()
    asm = assembler(store=store)
    agg = PartialAggregator(60, 0)
    agg.add(span(1.0, 5), 0)
    (partial,) = agg.cut()
    with pytest.raises(RuntimeError, match="boom"), asm.batch():
        asm.merge(partial)
        raise RuntimeError("boom")
    assert store.writes == [series_key("shop", "GET /cart")]
    with asm.batch():
        assert asm.merge(partial) is MergeResult.DUPLICATE


def test_batches_do_not_nest() -> None:
    asm = assembler()
    with asm.batch(), pytest.raises(RuntimeError, match="nest"), asm.batch():
        pass


def test_a_series_forgotten_inside_a_block_is_not_written_back(span: SpanFactory) -> None:
    clock = ManualClock()
    store = CountingStore()
    asm = assembler(clock, store=store, max_empty_windows=0, idle_close_seconds=5)
    agg = PartialAggregator(60, 0)
    agg.add(span(1.0, 5), 0)
    with asm.batch():
        asm.merge(agg.cut()[0])
        clock.advance(600)
        assert [w.requests for w in asm.close_ready()] == [1]
        assert asm.state("shop", "GET /cart") is None  # dormant: forgotten
    assert series_key("shop", "GET /cart") not in store
