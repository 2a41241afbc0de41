"""MessageTracker: a message is done when all its traces are; commit the contiguous prefix."""

from __future__ import annotations

import random

import pytest

from pipeline.clock import ManualClock
from pipeline.ingest.tracker import MessageTracker
from pipeline.sampling.buffer import TraceBuffer
from pipeline.sampling.errors import ErrorPolicy
from tests.unit.sampling.spans import span, tid


@pytest.mark.parametrize(
    ("tracked", "resolutions", "expected"),
    [
        # tracked: (offset, n_traces); resolutions: offsets, one per decided trace
        ([], [], None),
        ([(0, 1)], [], None),
        ([(0, 1)], [0], 0),
        ([(0, 0)], [], 0),  # nothing to wait for (e.g. dead-lettered)
        ([(0, 1), (1, 1), (2, 1)], [2, 1], None),  # out of order: 0 still open
        ([(0, 1), (1, 1), (2, 1)], [2, 0], 0),
        ([(0, 1), (1, 1), (2, 1)], [2, 0, 1], 2),
        ([(0, 2), (1, 1)], [0, 1], None),  # message 0 holds two traces
        ([(0, 2), (1, 1)], [0, 1, 0], 1),
        ([(5, 1), (9, 0), (12, 1)], [5], 9),  # offsets need not be consecutive
        ([(0, 1)], [0, 0], 0),  # a duplicate resolution does not go negative
    ],
)
def test_committable(
    tracked: list[tuple[int, int]], resolutions: list[int], expected: int | None
) -> None:
    tracker = MessageTracker()
    for offset, n in tracked:
        tracker.track(0, offset, n)
    for offset in resolutions:
        tracker.resolve([(0, offset)])
    assert tracker.committable(0) == expected


def test_partitions_are_independent() -> None:
    tracker = MessageTracker()
    tracker.track(0, 0, 1)
    tracker.track(1, 0, 1)
    tracker.resolve([(1, 0)])
    assert (tracker.committable(0), tracker.committable(1)) == (None, 0)


def test_committable_never_moves_back() -> None:
    tracker = MessageTracker()
    tracker.track(0, 0, 0)
    assert tracker.committable(0) == 0
    tracker.track(0, 1, 1)
    assert tracker.committable(0) == 0
    assert tracker.outstanding(0) == 1


def test_offsets_must_increase() -> None:
    tracker = MessageTracker()
    tracker.track(0, 5, 1)
    with pytest.raises(ValueError, match="tracked after"):
        tracker.track(0, 5, 1)


def test_release_forgets_a_revoked_partition() -> None:
    tracker = MessageTracker()
    tracker.track(0, 0, 1)
    tracker.release(0)
    tracker.resolve([(0, 0)])
    assert tracker.committable(0) is None
    assert tracker.unknown_resolutions == 1


def test_refs_must_be_partition_offset_pairs() -> None:
    with pytest.raises(TypeError):
        MessageTracker().resolve(["p0@1"])


@pytest.mark.parametrize("seed", range(5))
def test_with_buffer_every_span_out_once_and_all_committed(seed: int) -> None:
    """Random messages mixing traces that span messages; resolve as traces come out."""
    rng = random.Random(seed)
    clock = ManualClock()
    buf = TraceBuffer(5.0, clock, [ErrorPolicy()], max_traces=20, max_decided=50)
    tracker = MessageTracker()
    sent: list[str] = []
    out: list[str] = []
    committed: list[int | None] = []
    for offset in range(300):
        spans = [
            span(trace=tid(rng.randrange(60)), span_id=f"{offset:08x}{i:08x}")
            for i in range(rng.randrange(0, 4))
        ]
        sent.extend(s.span_id for s in spans)
        tracker.track(0, offset, buf.add(spans, (0, offset)))
        clock.advance(rng.choice([0.0, 0.5, 2.0, 6.0]))
        for decided in buf.due():
            out.extend(s.span_id for s in decided.spans)
            tracker.resolve(decided.refs)
        committed.append(tracker.committable(0))
    for decided in buf.flush_all():
        out.extend(s.span_id for s in decided.spans)
        tracker.resolve(decided.refs)
    assert sorted(out) == sorted(sent)
    assert tracker.committable(0) == 299 and tracker.unknown_resolutions == 0
    progress = [c for c in committed if c is not None]
    assert progress == sorted(progress)
