"""Offsets of the partials partitions a window stage took in, and the ones it was never given.

Faust can skip records of a partition during a rebalance and ack them for it
(it counts an offset jump as a gap, as in a compacted topic, and commits past
it: faust-streaming issues #216 and #606). The partials topic has no gaps of its
own (no compaction, no transactions), so a jump means partials never merged,
and the commit Faust makes past them would lose them for good. This keeps, per
owned partition, the next offset the stage should see; a record past it names
the skipped range, which the worker then reads from Kafka itself and merges
first (merging is idempotent, so reading a record twice is harmless).

>>> c = PartitionContinuity()
>>> c.assigned({5})
>>> c.expect(5, 900) is None  # start where the group's commit is
True
>>> c.observe(5, 900), c.observe(5, 902)
(None, range(901, 902))
>>> c.observe(5, 880)  # a replay after Faust sought back: nothing skipped
>>> c.assigned({4, 5}); c.observe(5, 903)  # kept through a rebalance: still tracked
>>> c.assigned({4}); c.expecting(5)  # moved away: its next owner tracks it
False
>>> c.expect(4, 10); c.forget(4); c.expecting(4)  # Faust sought back: start over
False
"""

from __future__ import annotations


class PartitionContinuity:
    """Next expected offset per owned partials partition; unknown until :meth:`expect`."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def assigned(self, partitions: set[int]) -> None:
        """The partitions owned now: forget the others (kept ones stay tracked)."""
        for partition in set(self._next) - partitions:
            del self._next[partition]

    def forget(self, partition: int) -> None:
        """Track the partition afresh from the group's commit, as if just assigned."""
        self._next.pop(partition, None)

    def next_offset(self, partition: int) -> int | None:
        """The next offset expected: every one below it was taken in (None: not tracked)."""
        return self._next.get(partition)

    def expecting(self, partition: int) -> bool:
        """True once the partition's next offset is known."""
        return partition in self._next

    def expect(self, partition: int, offset: int) -> None:
        """Start tracking at ``offset`` (the group's committed offset when it was assigned)."""
        self._next.setdefault(partition, offset)

    def observe(self, partition: int, offset: int) -> range | None:
        """Record one record taken in; the offsets skipped before it, if any."""
        expected = self._next.get(partition)
        self._next[partition] = max(offset + 1, expected or 0)
        if expected is None or offset <= expected:
            return None
        return range(expected, offset)
