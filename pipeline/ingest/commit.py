"""The commit protocol: what must be durable before an input offset is committed.

An input partition's Kafka offset is committed together with the partition's
marks (:class:`~pipeline.ingest.progress.Progress`, in the commit metadata).
Every side effect of a record (window partials on the partials topic, kept
spans in ``otel_traces``, a dead letter) happens after a commit that announces
it and before the commit that moves the position past the record, so a worker
that replays the record after a crash knows what may already have happened.
:class:`CommitProtocol` keeps the marks and makes every commit;
:class:`~pipeline.ingest.loop.IngestLoop` calls its steps in this order:

0. **Resume** (:meth:`~CommitProtocol.resume`, on assignment): read the
   committed position and marks; records are read again from the position.
   Without a write mark (a new group, nothing written yet, or offsets reset by
   hand, which drops the metadata) rows of any record in the topic may be
   stored, so step 6 checks every record up to the log end.
1. **Track** (:meth:`~CommitProtocol.track`) each record read, with the number
   of traces it waits for. Nothing is durable yet: after a crash it is read
   again.
2. **Announce** a cut of window partials (:meth:`~CommitProtocol.announce`):
   commit the intent ``i`` (the cut's last offset) before any partial of it is
   sent. Crash after: the next owner cuts at exactly ``i`` again, so its
   partials are byte-identical and the window stage drops them as duplicates.
3. **Deliver** (:meth:`~CommitProtocol.delivered`): once the producer confirmed
   every partial of the cut, ``d`` = the cut's offset and ``i`` is cleared, both
   committed by the next commit. Crash before it: the marks still say ``i``,
   so the resend is identical (step 2). Records at or below a committed ``d``
   are never aggregated again.
4. **Decide**: a dropped trace is done at once (:meth:`~CommitProtocol.resolve`),
   a kept one waits in the sink.
5. **Mark writes** (:meth:`~CommitProtocol.mark_writes`): before a batch of kept
   traces is inserted, ``w`` is raised to the highest offset of its records and
   committed. Crash after: the batch may or may not land; step 6 covers both.
6. **Insert** the batch (:class:`~pipeline.sinks.clickhouse.TraceWriter`) under a
   token digested from its rows; once acknowledged its traces are done
   (:meth:`~CommitProtocol.written`).
   A trace with a record at or below the ``w`` read at step 0 is checked against
   ``otel_traces`` first and only its missing spans are written, so a crash
   between the insert and step 7 duplicates nothing. A dead-lettered record is
   done once the DLQ acknowledged it (:meth:`~CommitProtocol.dead_lettered`).
7. **Commit** (:meth:`~CommitProtocol.commit`, every round): position = min(the
   highest offset up to which every record is done, ``d``) + 1, never below the
   position of step 0, with the marks. Crash before: the records after the last
   committed position are replayed, and steps 2, 3 and 6 make that harmless.
8. **Hand over** (:meth:`~CommitProtocol.hand_over`, on revoke and shutdown):
   step 7 plus ``x``, the ranges at or after the position already decided and
   handled. The next owner aggregates those records into partials but does not
   sample or write them again: it may write to another store (chdb is one per
   worker), where the check of step 6 would not find them.

Every commit is synchronous. Steps 2 and 5 raise KafkaException when theirs
fails: the side effect they guard must not happen then. A failed step 7 is
repeated the next round.

The marks of one partition through the steps, as older workers read them:

>>> marks = Progress.parse(None)  # step 0, a new partition: nothing yet
>>> marks = replace(marks, intent=4); marks.render()  # step 2
'd=-1;i=4;w=-1'
>>> marks = replace(marks, delivered=4, intent=None); marks.render()  # step 3
'd=4;w=-1'
>>> marks = replace(marks, write_mark=3); marks.render()  # step 5
'd=4;w=3'
>>> replace(marks, done=((6, 9),)).render()  # step 8: records 6 to 9 decided ahead
'd=4;w=3;x=6-9'
>>> Progress.parse("d=4;i=7;w=3")  # step 0 of the next owner
Progress(delivered=4, intent=7, write_mark=3, done=())
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace

from confluent_kafka import Consumer, KafkaException, TopicPartition

from pipeline import metrics
from pipeline.ingest.core import Cut, DeadLetter
from pipeline.ingest.progress import Progress, Ranges
from pipeline.ingest.tracker import MessageTracker
from pipeline.sampling.buffer import DecidedTrace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resume:
    """How to take a partition over (step 0): where to read from and the marks found."""

    partition: int
    position: int
    marks: Progress
    #: records up to here are cut one by one (offsets reset without marks); -1: none
    recut_through: int = -1


@dataclass
class _Owned:
    #: the commit position at step 0; commits never go below it
    base_position: int
    #: the live marks (``x`` is only rendered at a hand-over)
    marks: Progress
    #: records at or below this offset may have rows stored already (step 6)
    replay_zone: int
    #: the ``x`` ranges of the previous owner
    inherited: Ranges
    #: the last offset read (``d`` of step 0 until a record is tracked)
    last_read: int


class CommitProtocol:
    """Marks, done offsets and commits of the input partitions this worker owns."""

    def __init__(self, consumer: Consumer, topic: str) -> None:
        self.consumer = consumer
        self.topic = topic
        self.tracker = MessageTracker()
        self._owned: dict[int, _Owned] = {}
        #: what the last successful commit of each partition carried: (position, marks)
        self._committed: dict[int, tuple[int, str]] = {}

    # -- step 0 ---------------------------------------------------------------------------
    def resume(self, partitions: list[TopicPartition]) -> list[Resume]:
        """Read the committed positions and marks of newly assigned partitions."""
        committed = self.consumer.committed(partitions, timeout=30)
        return [self._resume(tp) for tp in committed]

    def _resume(self, tp: TopicPartition) -> Resume:
        low, high = self.consumer.get_watermark_offsets(tp, timeout=10)
        position = tp.offset if tp.offset >= 0 else int(low)
        marks = Progress.parse(tp.metadata)
        replay_zone = int(high) - 1 if marks.write_mark < 0 else marks.write_mark
        # An offset committed without any mark was reset by hand: the window stage has
        # merged those records before, under cut boundaries nobody knows now. (Marks
        # with no write yet, e.g. ``d=217;w=-1``, still tell where cuts were.)
        reset = tp.offset >= 0 and marks == Progress()
        # Whatever was tracked for the partition before is void: reading restarts at
        # the position (a revoke that did not finish leaves it behind).
        self.tracker.release(tp.partition)
        self._owned[tp.partition] = _Owned(
            position, replace(marks, done=()), replay_zone, marks.done, marks.delivered
        )
        log.info("assigned partition %d (resume marks %s)", tp.partition, marks.render())
        return Resume(tp.partition, position, marks, replay_zone if reset else -1)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions; their unfinished records are replayed by the next owner."""
        for p in partitions:
            self._owned.pop(p, None)
            self.tracker.release(p)
            self._committed.pop(p, None)

    def marks(self, partition: int) -> Progress:
        return self._owned[partition].marks

    # -- step 1 ---------------------------------------------------------------------------
    def track(self, partition: int, offset: int, traces: int) -> None:
        """A record was read; it is done once ``traces`` resolutions came for it."""
        self.tracker.track(partition, offset, traces)
        self._owned[partition].last_read = offset

    def next_offset(self, partition: int) -> int:
        """The lowest offset not read yet: after the last one, never below step 0's position."""
        owned = self._owned[partition]
        return max(owned.base_position, self.tracker.last_tracked(partition) + 1)

    # -- steps 2 and 3 --------------------------------------------------------------------
    def announce(self, cuts: Sequence[Cut]) -> None:
        """Commit the intent of each cut not announced yet; raises if it is not durable."""
        fresh = [cut for cut in cuts if cut.partials and not cut.announced]
        for cut in fresh:
            owned = self._owned[cut.partition]
            owned.marks = replace(owned.marks, intent=cut.offset)
        if fresh:
            self._commit(only={cut.partition for cut in fresh}, required=True)

    def delivered(self, cuts: Sequence[Cut]) -> None:
        """Every partial of these cuts is on the partials topic."""
        for cut in cuts:
            owned = self._owned.get(cut.partition)
            if owned is not None and cut.offset > owned.marks.delivered:
                owned.marks = replace(owned.marks, delivered=cut.offset, intent=None)

    # -- steps 4 to 6 ---------------------------------------------------------------------
    def resolve(self, refs: Iterable[Hashable]) -> None:
        """The traces carrying these refs are handled (dropped, or written)."""
        self.tracker.resolve(refs)

    def mark_writes(self, traces: Sequence[DecidedTrace]) -> None:
        """Raise the write marks over the records of ``traces`` and commit; raises if not
        durable. Also a commit of anything else that changed (nothing, when an earlier
        round committed these marks and its insert failed)."""
        highest: dict[int, int] = {}
        for trace in traces:
            for ref in trace.refs:
                p, o = _partition(ref), _offset(ref)
                highest[p] = max(o, highest.get(p, -1))
        for p, o in highest.items():
            owned = self._owned.get(p)
            if owned is not None and o > owned.marks.write_mark:
                owned.marks = replace(owned.marks, write_mark=o)
        self._commit(required=True)

    def in_replay_zone(self, trace: DecidedTrace) -> bool:
        """True if rows of some record of the trace may already be stored (step 6)."""
        for ref in trace.refs:
            owned = self._owned.get(_partition(ref))
            if owned is not None and _offset(ref) <= owned.replay_zone:
                return True
        return False

    def written(self, traces: Sequence[DecidedTrace]) -> None:
        """The store acknowledged these traces' rows."""
        for trace in traces:
            self.tracker.resolve(trace.refs)

    def dead_lettered(self, letter: DeadLetter) -> None:
        """The DLQ acknowledged ``letter``: its records no longer hold the commit back."""
        self.tracker.resolve(letter.refs or [(letter.partition, letter.offset)])

    # -- steps 7 and 8 --------------------------------------------------------------------
    def commit(self) -> None:
        """Commit positions and marks that changed; a failure is retried next round."""
        self._commit()

    def hand_over(self) -> None:
        """The last commit before partitions leave: also what is decided ahead (``x``)."""
        self._commit(handover=True)

    def positions(self, handover: bool = False) -> dict[int, tuple[int, Progress]]:
        """Per partition, the commit position (the next offset to read) and its marks."""
        out = {}
        for p, owned in self._owned.items():
            done = self.tracker.committable(p)
            safe = -1 if done is None else min(done, owned.marks.delivered)
            position = max(owned.base_position, safe + 1)
            marks = owned.marks
            if handover:
                ahead = self.tracker.done_ranges(p, position)
                unread = max(position, owned.last_read + 1)
                marks = replace(marks, done=_merge(ahead, owned.inherited, unread))
            out[p] = (position, marks)
        unacked = sum(self.tracker.outstanding(p) for p in self._owned)
        metrics.UNACKED_MESSAGES.set(unacked)
        return out

    def _commit(
        self, only: set[int] | None = None, required: bool = False, handover: bool = False
    ) -> None:
        offsets = []
        for p, (position, marks) in self.positions(handover).items():
            rendered = marks.render()
            if (only is None or p in only) and self._committed.get(p) != (position, rendered):
                offsets.append(TopicPartition(self.topic, p, position, metadata=rendered))
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # nothing moved: the next round commits again
            if required:
                raise
            log.warning("commit of %d partitions failed, retrying: %s", len(offsets), exc)
            return
        for tp in offsets:
            self._committed[tp.partition] = (tp.offset, tp.metadata or "")


def _merge(ahead: Ranges, inherited: Ranges, unread: int) -> Ranges:
    """This owner's decided-ahead runs plus the inherited ones it has not read yet.

    >>> _merge(((10, 12),), ((8, 9), (11, 20)), unread=13)
    ((10, 12), (13, 20))
    """
    kept = [(max(first, unread), last) for first, last in inherited if last >= unread]
    return (*ahead, *kept)


def _partition(ref: Hashable) -> int:
    assert isinstance(ref, tuple)
    return int(ref[0])


def _offset(ref: Hashable) -> int:
    assert isinstance(ref, tuple)
    return int(ref[1])
