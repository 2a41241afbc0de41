"""Let Faust commit past the partials the window stage read back itself.

Faust commits a partition up to the end of the first run of consecutive acked
offsets, and offsets it never delivered (a jump it took for a gap) count as
acked only when its fetch loop recorded the jump. It does not always: it reads
a last-read offset of 0 as "none" (``if gap > 1 and r_offset`` in
``Consumer._drain_messages``), so a jump right after a partition's first record
is never recorded. The window stage reads such a range back and merges it (see
:mod:`pipeline.faust.continuity`), but Faust still waits for acks of those
offsets; and once it has committed offset 1, ``Consumer._new_offset`` refuses
any later commit whose first acked offset is further on. The partition stays
committed at 1 for good, and every restart replays it.

:func:`settle_read_back` records the range as a gap, Faust's own mark for
offsets it will never deliver, once the records are merged. Faust merges
overlapping gaps, so a range it did record is not counted twice, and offsets
it has seen acked are left out (duplicates in its acked list would slow its
commits to about one offset per commit).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from faust.exceptions import ConsumerNotStarted
from faust.types import TP, tuples

from pipeline.windows.stage import Record

log = logging.getLogger(__name__)

#: How often the window stage looks for a partials commit Faust holds (:class:`StallWatch`).
STALL_CHECK_SECONDS = 5.0


async def settle_read_back(app: Any, message: Any, read_back: Sequence[Record]) -> bool:
    """Count the merged ``read_back`` records done in ``app``'s consumer's commit bookkeeping.

    ``message`` is the record in hand, after the read-back range. False when
    the partition was revoked or reassigned since that record was fetched:
    Faust then dropped its bookkeeping of the partition (and, if it kept it,
    sought back to its committed offset), so nothing is recorded and the
    caller tracks the partition afresh.
    """
    if not read_back:
        return True
    offsets = range(read_back[0].offset, read_back[-1].offset + 1)
    return await settle_range(app.consumer, message, offsets, app.consumer_generation_id)


async def settle_range(consumer: Any, message: Any, offsets: range, generation: int) -> bool:
    """:func:`settle_read_back` for ``offsets``; ``generation``: the group generation now."""
    tp: TP = message.tp
    try:
        assigned = tp in consumer.assignment()
    except ConsumerNotStarted:  # no consumer thread (agent tests): no commit to move
        return True
    if message.generation_id != generation or not assigned:
        return False
    await _record_gap(consumer, tp, offsets)
    return True


class StallWatch:
    """Finds partitions whose commit Faust holds for offsets the stage has merged.

    Faust's head rule (``Consumer._new_offset``) commits nothing more of a
    partition while the offsets between its committed one and its first acked
    one are neither acked nor a gap. A rebalance can leave it so with no jump
    the stage sees: records fetched for a kept partition before Faust's seek to
    its commit are delivered while its bookkeeping of the partition is empty
    (no gap recorded), and their read offset then makes it drop the records it
    delivers again from the commit (the stage had merged them before the
    rebalance). The partition stays committed where it was (the ``backlog-join``
    fault scenario shows it without any read-back). The same wait seen twice
    in a row, on offsets all below the stage's next expected offset of the
    partition (every offset below it was merged, or read back and merged), is
    recorded as a gap.
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._seen: dict[TP, range] = {}

    async def settle(
        self, consumer: Any, merged_below: Callable[[int], int | None]
    ) -> list[tuple[TP, range]]:
        """Record the waits seen at the last call too; returns them."""
        try:
            assignment = [tp for tp in consumer.assignment() if tp.topic == self.topic]
        except ConsumerNotStarted:
            return []
        seen, self._seen, settled = self._seen, {}, []
        for tp in assignment:
            _drop_repeats(consumer, tp)
            wait = _head_wait(consumer, tp)
            below = merged_below(tp.partition)
            if wait is None or below is None or wait.stop > below:
                continue
            if seen.get(tp) != wait:
                self._seen[tp] = wait  # a moment in a rebalance, maybe: look again
                continue
            await _record_gap(consumer, tp, wait)
            settled.append((tp, wait))
            log.warning(
                "%s[%d]: Faust held its commit for merged offsets %d-%d; counted them done",
                tp.topic,
                tp.partition,
                wait.start,
                wait.stop - 1,
            )
        return settled


def _drop_repeats(consumer: Any, tp: TP) -> None:
    """Keep each acked offset once in Faust's acked list of ``tp``.

    Faust adds a gap's offsets to that list without marking them acked, so an
    offset it then delivers again (after a seek) is acked a second time; it
    commits only up to the first repeat, about one offset per commit (the rest
    of a partition's backlog then takes minutes to commit).
    """
    acked = consumer._acked.get(tp)
    if acked and len(set(acked)) < len(acked):
        with getattr(tuples, "ack_lock", contextlib.nullcontext()):  # faust-streaming's
            acked[:] = sorted(set(acked))


def _head_wait(consumer: Any, tp: TP) -> range | None:
    """The offsets Faust's head rule waits for before it commits ``tp`` again, if any."""
    acked = consumer._acked.get(tp)
    committed = consumer._committed_offset.get(tp)
    if not acked or not committed:
        return None
    first = min(acked)
    gaps = consumer._gap.get(tp)
    if gaps:
        first = min([first, *(gap.begin for gap in gaps.overlap(0, max(acked)))])
    return range(committed, first) if first - committed > 1 else None


async def _record_gap(consumer: Any, tp: TP, offsets: range) -> None:
    acked = consumer._acked_index[tp]  # e.g. a record in hand acked across a rebalance
    for run in _runs([o for o in offsets if o not in acked]):
        added = consumer._add_gap(tp, run.start, run.stop - 1)
        if inspect.isawaitable(added):  # a coroutine in faust-streaming 0.15 (tests pin it)
            await added


def _runs(offsets: list[int]) -> list[range]:
    """Sorted offsets as runs of consecutive ones.

    >>> _runs([1, 2, 4, 5, 6, 9])
    [range(1, 3), range(4, 7), range(9, 10)]
    """
    runs: list[range] = []
    for offset in offsets:
        if runs and runs[-1].stop == offset:
            runs[-1] = range(runs[-1].start, offset + 1)
        else:
            runs.append(range(offset, offset + 1))
    return runs
