"""Ring: bounded per-step buckets, sums over spans of time, checked JSON form."""

from __future__ import annotations

import pytest

from pipeline.checked import StateError
from pipeline.slo.ring import Counts, Ring


@pytest.mark.parametrize(
    ("adds", "end", "span", "expected"),
    [
        ([], 60, 60, (0, 0)),
        ([(0, 1, 2)], 60, 60, (1, 2)),
        ([(0, 1, 2), (60, 3, 3)], 120, 60, (3, 3)),  # only the last bucket
        ([(0, 1, 2), (60, 3, 3)], 120, 120, (4, 5)),
        ([(0, 1, 2), (59, 3, 3)], 60, 60, (4, 5)),  # same bucket
        ([(0, 1, 2), (180, 3, 3)], 240, 240, (4, 5)),  # a gap counts zero
        ([(0, 1, 2), (600, 3, 3)], 660, 660, (3, 3)),  # 0 dropped out of 4 buckets
        ([(120, 1, 2), (0, 3, 3)], 180, 180, (4, 5)),  # an older window, still in the span
        ([(300, 1, 2), (0, 3, 3)], 360, 360, (1, 2)),  # ... and one beyond it
    ],
)
def test_sums(
    adds: list[tuple[int, int, int]], end: int, span: int, expected: tuple[int, int]
) -> None:
    ring = Ring(60, 4)
    for start, good, total in adds:
        ring.add(start, good, total)
    assert ring.sum(end, span) == Counts(*expected)


def test_too_old_is_refused_and_the_ring_stays_bounded() -> None:
    ring = Ring(60, 3)
    for i in range(100):
        assert ring.add(i * 60, 1, 1)
    assert len(ring.goods) == 3 and ring.base_ns == 97 * 60
    assert not ring.add(0, 1, 1)
    assert Counts(1, 3).bad == 2


def test_round_trip_and_bad_stored_forms() -> None:
    ring = Ring(60, 3)
    ring.add(120, 1, 2)
    back = Ring.from_list(ring.to_list(), "r")
    assert back.to_list() == ring.to_list()
    for bad in (
        [60, 3, 120, [3], [2]],  # good > total
        [60, 3, 120, [1, 1], [2]],  # unpaired
        [60, 3, None, [1], [2]],  # counts without a base
        [60, 3, 0, [0] * 4, [0] * 4],  # more than size
        [60, 3, 0, [-1], [2]],
        [60, 3, 0, "x", [2]],
        [60, 3],
    ):
        with pytest.raises(StateError):
            Ring.from_list(bad, "r")
