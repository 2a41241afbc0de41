"""Let Faust commit past the partials the window stage read back itself.

Faust commits a partition up to the end of the first run of consecutive acked
offsets, and offsets it never delivered (a jump it took for a gap) count as
acked only when its fetch loop recorded the jump. It does not always: it reads
a last-read offset of 0 as "none" (``if gap > 1 and r_offset`` in
``Consumer._drain_messages``), so a jump right after a partition's first record
is never recorded. The window stage reads such a range back and merges it (see
:mod:`pipeline.windows.continuity`), but Faust still waits for acks of those
offsets; and once it has committed offset 1, ``Consumer._new_offset`` refuses
any later commit whose first acked offset is further on. The partition stays
committed at 1 for good, and every restart replays it (issue #12: lag 1,509
after shutdown).

:func:`settle_read_back` records the range as a gap, Faust's own mark for
offsets it will never deliver, once the records are merged. Faust merges
overlapping gaps, so a range it did record is not counted twice (duplicates
in its acked list would slow its commits to one offset per commit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from pipeline.partials_log import Record


async def settle_read_back(app: Any, message: Any, read_back: Sequence[Record]) -> bool:
    """Count the merged ``read_back`` records done in ``app``'s consumer's commit bookkeeping.

    ``message`` is the record in hand, after the read-back range. Nothing is
    recorded (False) when the partition was revoked or reassigned since the
    record was fetched: Faust then dropped its bookkeeping of the partition and
    sought back to the committed offset, so it delivers (and acks) them itself.
    """
    if not read_back:
        return False
    offsets = range(read_back[0].offset, read_back[-1].offset + 1)
    return await settle_range(app.consumer, message, offsets, app.consumer_generation_id)


async def settle_range(consumer: Any, message: Any, offsets: range, generation: int) -> bool:
    """:func:`settle_read_back` for ``offsets``; ``generation``: the group generation now."""
    tp: TP = message.tp
    if not offsets or message.generation_id != generation or tp not in _assignment(consumer):
        return False
    await consumer._add_gap(tp, offsets.start, offsets.stop - 1)
    return True


def _assignment(consumer: Any) -> set[TP]:
    try:
        return set(consumer.assignment())
    except ConsumerNotStarted:  # no consumer thread (agent tests): nothing to commit
        return set()
