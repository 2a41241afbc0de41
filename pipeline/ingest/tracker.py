"""Which source messages are fully decided, and the highest offset safe to commit.

A message may hold spans of several traces, and a trace may take spans from
several messages, so a message is done only when every trace it contributed to
has been decided *and* handled (kept spans written, or dropped). The commit
protocol (:mod:`pipeline.ingest.commit`) calls :meth:`MessageTracker.track`
with the number of traces :meth:`TraceBuffer.add
<pipeline.sampling.buffer.TraceBuffer.add>` returned for the message, and
:meth:`MessageTracker.resolve` with a decided trace's refs once that trace is
handled. :meth:`MessageTracker.committable` then gives, per partition, the
highest offset below which everything is done; Kafka's commit position is that
offset + 1.

A message with nothing to wait for (its traces decided by a previous owner) is
tracked with ``n_traces=0`` and counts as done at once.

>>> tracker = MessageTracker()
>>> tracker.track(0, 10, n_traces=2)
>>> tracker.track(0, 11, n_traces=0)
>>> tracker.committable(0) is None
True
>>> tracker.resolve([(0, 10)])
>>> tracker.resolve([(0, 10)])
>>> tracker.committable(0)
11
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable


class _Partition:
    __slots__ = ("committed", "last_tracked", "offsets", "remaining")

    def __init__(self) -> None:
        self.offsets: deque[int] = deque()
        self.remaining: dict[int, int] = {}
        self.committed: int | None = None
        self.last_tracked: int | None = None


class MessageTracker:
    """Outstanding-trace counts per ``(partition, offset)`` and contiguous done offsets."""

    def __init__(self) -> None:
        self._partitions: dict[int, _Partition] = {}
        #: Resolutions for messages not tracked (e.g. of a revoked partition); ignored.
        self.unknown_resolutions = 0

    def track(self, partition: int, offset: int, n_traces: int) -> None:
        """Start waiting for ``n_traces`` decided traces of one message.

        Offsets of a partition must be tracked in increasing order (consume order).
        """
        if n_traces < 0:
            raise ValueError(f"n_traces must be >= 0, got {n_traces}")
        part = self._partitions.setdefault(partition, _Partition())
        if part.last_tracked is not None and offset <= part.last_tracked:
            raise ValueError(
                f"offset {offset} of partition {partition} tracked after {part.last_tracked}"
            )
        part.last_tracked = offset
        part.offsets.append(offset)
        part.remaining[offset] = n_traces

    def last_tracked(self, partition: int) -> int:
        """The highest offset tracked on ``partition`` (-1: none): the next must be above."""
        part = self._partitions.get(partition)
        return -1 if part is None or part.last_tracked is None else part.last_tracked

    def resolve(self, refs: Iterable[Hashable]) -> None:
        """Count one handled trace for each ``(partition, offset)`` ref."""
        for ref in refs:
            if not (isinstance(ref, tuple) and len(ref) == 2):
                raise TypeError(f"refs must be (partition, offset) tuples, got {ref!r}")
            part = self._partitions.get(ref[0])
            left = None if part is None else part.remaining.get(ref[1])
            if part is None or not left:
                self.unknown_resolutions += 1
                continue
            part.remaining[ref[1]] = left - 1

    def committable(self, partition: int) -> int | None:
        """Highest offset such that it and every earlier tracked offset are done, if any."""
        part = self._partitions.get(partition)
        if part is None:
            return None
        while part.offsets and part.remaining[part.offsets[0]] == 0:
            offset = part.offsets.popleft()
            del part.remaining[offset]
            part.committed = offset
        return part.committed

    def done_ranges(self, partition: int, start: int) -> tuple[tuple[int, int], ...]:
        """Inclusive offset runs at or after ``start`` whose messages are all done.

        >>> tracker = MessageTracker()
        >>> for offset in (5, 6, 7, 8):
        ...     tracker.track(0, offset, n_traces=1)
        >>> tracker.resolve([(0, 5), (0, 7), (0, 8)])
        >>> tracker.committable(0), tracker.done_ranges(0, start=5)
        (5, ((5, 5), (7, 8)))
        """
        part = self._partitions.get(partition)
        if part is None:
            return ()
        runs: list[tuple[int, int]] = []
        if part.committed is not None and part.committed >= start:
            runs.append((start, part.committed))
        for offset in part.offsets:
            if offset < start or part.remaining[offset]:
                continue
            if runs and offset == runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], offset)
            else:
                runs.append((offset, offset))
        return tuple(runs)

    def outstanding(self, partition: int) -> int:
        """Messages of a partition tracked and not yet committable."""
        part = self._partitions.get(partition)
        return 0 if part is None else len(part.offsets)

    def release(self, partition: int) -> None:
        """Forget a partition (revoked on rebalance); later resolutions for it are ignored."""
        self._partitions.pop(partition, None)
