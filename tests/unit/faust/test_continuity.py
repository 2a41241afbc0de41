"""PartitionContinuity: which partials offsets the window stage was never given."""

from __future__ import annotations

import pytest

from pipeline.faust.continuity import PartitionContinuity

#: (committed offset at assignment, offsets the stage sees, skipped ranges reported)
CASES = [
    ("in order", 0, [0, 1, 2, 3], []),
    ("one skipped", 0, [0, 1, 3], [range(2, 3)]),
    ("skipped at the start", 10, [12, 13], [range(10, 12)]),
    ("a replay after a seek back", 0, [0, 1, 2, 1, 2, 3], []),
    ("a replay, then a skip past the old end", 0, [0, 1, 2, 0, 4], [range(3, 4)]),
    ("two skips", 5, [5, 7, 10], [range(6, 7), range(8, 10)]),
]


@pytest.mark.parametrize(
    ("committed", "seen", "skipped"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_skipped_ranges(committed: int, seen: list[int], skipped: list[range]) -> None:
    c = PartitionContinuity()
    c.assigned({3})
    c.expect(3, committed)
    got = [r for r in (c.observe(3, offset) for offset in seen) if r is not None]
    assert got == skipped


def test_an_untracked_partition_reports_nothing_until_it_is_expected() -> None:
    c = PartitionContinuity()
    assert not c.expecting(1)
    assert c.observe(1, 50) is None  # no committed offset known: nothing to compare with
    assert c.observe(1, 52) == range(51, 52)


def test_a_partition_moved_away_and_back_starts_over_at_its_commit() -> None:
    c = PartitionContinuity()
    c.assigned({1, 2})
    c.expect(1, 0)
    c.observe(1, 0)
    c.assigned({2})  # another worker took partition 1 on and got to offset 500
    c.assigned({1, 2})
    assert not c.expecting(1)
    c.expect(1, 500)
    assert c.observe(1, 500) is None


def test_expect_does_not_move_a_tracked_partition() -> None:
    c = PartitionContinuity()
    c.expect(4, 10)
    c.observe(4, 10)
    c.expect(4, 0)  # a stale commit looked up late
    assert c.observe(4, 12) == range(11, 12)
