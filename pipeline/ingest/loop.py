"""The ingest shell: a confluent-kafka consumer around :class:`~pipeline.ingest.core.IngestCore`.

Why not a Faust agent for this topic: Faust acks an event when the agent
moves on or raises and commits contiguous acks on its own schedule, while tail
sampling must hold records for seconds and commit them only once their spans
are durably decided; and Faust's per-event overhead alone held a trivial agent
near 25% of a bare consumer (measured before this module, see README). A
librdkafka consumer with manual commits does both: commit positions and the
delivery marks of :mod:`pipeline.ingest.progress` go out together.

The loop runs in its own thread (everything here blocks); the Faust app in
the main thread consumes the partials this loop produces.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from pipeline import metrics
from pipeline.clock import Clock
from pipeline.errors import BatchRejected, DecodeError, SinkUnavailable
from pipeline.ingest.core import Cut, DeadLetter, IngestCore
from pipeline.ingest.deadletter import DeadLetters, dlq_headers, trace_letter
from pipeline.ingest.progress import Progress
from pipeline.ingest.volume import VolumeMeter
from pipeline.sampling.buffer import DecidedTrace
from pipeline.sinks.base import BatchingSink
from pipeline.tables import key_bytes
from pipeline.windows.assembler import series_key
from pipeline.windows.hold import Hold

log = logging.getLogger(__name__)
TraceSink = BatchingSink[DecidedTrace]
#: Seconds between consumer-lag refreshes (cached watermarks: no broker round trip).
LAG_INTERVAL = 5.0
#: Seconds to wait after a Kafka error before the next round.
KAFKA_RETRY_SECONDS = 1.0
#: Seconds between Hold markers while fetching is paused (well below any idle close).
HOLD_INTERVAL = 5.0
#: Consumer errors about one fetched batch (it did not decompress within
#: ``receive.message.max.bytes``, or is corrupt): its records are dead-lettered.
UNDELIVERABLE = frozenset({KafkaError._BAD_COMPRESSION, KafkaError._BAD_MSG})
__all__ = ["IngestLoop", "dlq_headers", "partial_key"]


class IngestLoop:
    """Consume, decide, write, send partials and commit, in that order, until stopped."""

    def __init__(
        self,
        *,
        core: IngestCore,
        consumer: Consumer,
        producer: Producer,
        sink: TraceSink,
        input_topic: str,
        partials_topic: str,
        dlq_topic: str,
        flush_interval: float = 1.0,
        clock: Clock | None = None,
        max_buffered_traces: int = 50_000,
        partials_partitions: int = 1,
        dlq_max_value_bytes: int = 524_288,
    ) -> None:
        self.core = core
        self.partials_partitions = partials_partitions
        self.max_buffered_traces = max_buffered_traces
        self.consumer = consumer
        self.producer = producer
        self.sink = sink
        self.input_topic = input_topic
        self.partials_topic = partials_topic
        self.dlq_topic = dlq_topic
        self.flush_interval = flush_interval
        #: The core's clock unless told otherwise, so tests drive flushes and backoff by hand.
        self.clock = core.clock if clock is None else clock
        self.volume = VolumeMeter(core.buffer.stats, self.clock)
        self.stop_event = threading.Event()
        self._unsent: list[Cut] = []
        self._committed: dict[int, tuple[int, str]] = {}
        self._last_flush = self.clock.now()
        self._paused_until = 0.0
        self._paused = False
        self._held_at = float("-inf")
        self._lag_at = float("-inf")
        self._delivery_errors: list[str] = []
        #: partitions sought past a bad batch in the current round
        self._sought: set[int] = set()
        self.dead_letters = DeadLetters(
            produce=self._produce,
            topic=dlq_topic,
            source_topic=input_topic,
            clock=self.clock,
            on_delivered=core.dead_lettered,
            max_value_bytes=dlq_max_value_bytes,
        )
        # A trace the store refuses (a value it cannot hold) is dead-lettered, not retried.
        sink.on_rejected = self._rejected

    # -- rebalance ----------------------------------------------------------------------
    def subscribe(self) -> None:
        self.consumer.subscribe(
            [self.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        for tp in committed:
            low, high = self.consumer.get_watermark_offsets(tp, timeout=10)
            position = tp.offset if tp.offset >= 0 else int(low)
            progress = Progress.parse(tp.metadata)
            # No marks (a new group, or offsets reset by kafka-consumer-groups, which drops
            # commit metadata): rows of any record in the topic may already be stored, so
            # all of them are checked against otel_traces before they are written again.
            replay_through = int(high) - 1 if progress.write_mark < 0 else None
            # An offset committed without any mark was reset by hand: the window stage
            # has merged those records before, under cut boundaries nobody knows now.
            # (Marks with no write yet, e.g. ``d=217;w=-1``, still tell where cuts were.)
            reset = tp.offset >= 0 and progress == Progress()
            self.core.assign(
                tp.partition,
                progress,
                position,
                replay_through=replay_through,
                recut_through=replay_through if reset else None,
            )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Hand over cleanly: write what is decided, send partials, commit, then forget."""
        log.info("partitions revoked: %s", [tp.partition for tp in partitions])
        try:
            self._decide()
            self._send_cuts(force=True)
            self._flush_sink(force=True)
            self._commit(handover=True)
        except SinkUnavailable as exc:
            log.warning("revoked while ClickHouse is unavailable; next owner replays: %s", exc)
        except KafkaException as exc:  # e.g. the group moved on while the broker was away
            log.warning("revoked without a final commit; next owner replays: %s", exc)
        if self._paused:
            # librdkafka keeps a partition's pause flag across re-assignment; resume (while
            # still assigned) what leaves, or it could come back paused for good.
            with contextlib.suppress(KafkaException):
                self.consumer.resume(partitions)
        gone = {tp.partition for tp in partitions}
        # Kept traces still waiting to be written belong to the next owner now, which
        # replays their records. (A sealed batch stays: its retry must keep its token.)
        # A trace that also holds records of a partition we keep is written by us: its
        # other records are tracked here and would never be resolved otherwise.
        dropped = self.sink.discard(lambda trace: _partitions_of(trace) <= gone)
        if dropped:
            log.info("left %d unwritten traces of revoked partitions to their next owner", dropped)
        for p in gone:
            self.core.revoke(p)
            self._committed.pop(p, None)
            _forget_lag(p)
        # The next owner re-cuts and dead-letters these itself: sending them from here
        # too would only add duplicates.
        self._unsent = [c for c in self._unsent if c.partition not in gone]
        self.dead_letters.forget(gone)

    # -- main loop ----------------------------------------------------------------------
    def run(self) -> None:
        """Block until :attr:`stop_event` is set; then commit what is safe and leave the group."""
        self.subscribe()
        try:
            while not self.stop_event.is_set():
                try:
                    self.step()
                except KafkaException as exc:
                    # A broker restart or a coordinator move: every stage is safe to
                    # repeat (commits, cuts and writes are retried from their state).
                    log.warning("kafka error, retrying in %.0fs: %s", KAFKA_RETRY_SECONDS, exc)
                    self.stop_event.wait(KAFKA_RETRY_SECONDS)
        finally:
            self._shutdown()

    def step(self, batch: int = 500, timeout: float = 0.1) -> int:
        """One poll-and-tick round; returns the records consumed (for tests and benchmarks)."""
        self._hold_fetching()
        # Paused partitions yield no records, but consume() still serves rebalance
        # callbacks and keeps the group membership alive, and it waits ``timeout``.
        records = self.consumer.consume(batch, timeout)
        self._sought.clear()
        for record in records:
            # Fetched before a seek on its partition in this round (measured: more reports
            # of the same bad batch): the seek fetches whatever it is again.
            if record.partition() not in self._sought:
                self._on_record(record)
        self.producer.poll(0)
        self._tick()
        return len(records)

    def _buffer_full(self) -> bool:
        """Memory bound: traces wait ``decision_wait`` in memory, and kept ones then wait
        for their insert, so a fast backlog (or a ClickHouse outage) would otherwise hold
        ever more of them; fetching resumes as they are decided and written."""
        held = len(self.core.buffer) + self.sink.pending_rows
        return held >= self.max_buffered_traces

    def _backing_off(self) -> bool:
        return self.clock.now() < self._paused_until

    def _hold_fetching(self) -> None:
        """Pause fetching during a sink backoff or while the trace buffer is full.

        Pausing (not skipping consume, nor polling and discarding what poll
        returns) is what keeps records safe: librdkafka purges the prefetched
        ones and refetches from the last record handed to us on resume.
        """
        if self._backing_off() or self._buffer_full():
            # Every round: partitions assigned during the backoff must pause too.
            self.consumer.pause(self.consumer.assignment())
            self._paused = True
        elif self._paused:
            self.consumer.resume(self.consumer.assignment())
            self._paused = False

    def _on_record(self, record: Message) -> None:
        err = record.error()
        if err is not None:
            self._on_error(record, err)
            return
        self._take(int(record.partition() or 0), int(record.offset() or 0), record)

    def _take(
        self, partition: int, offset: int, record: Message | None, failed: DecodeError | None = None
    ) -> None:
        key, value = (record.key(), record.value()) if record is not None else (None, None)
        headers = _headers(record) if record is not None else []
        result = self.core.on_record(partition, offset, key, value, headers, failed)
        if isinstance(result, DeadLetter):
            metrics.DECODE_ERRORS.labels(result.reason).inc()
            # Cut now: a decompression bomb's value is not held while its send waits.
            self._dead_letter(self.dead_letters.fit(result))
        else:
            self.volume.record_in(result)

    def _on_error(self, record: Message, err: KafkaError) -> None:
        """Dead-letter a record librdkafka cannot hand over, then step past it.

        A batch that does not decompress within ``receive.message.max.bytes`` (a zstd
        bomb) comes back as an error naming its offset, and librdkafka fetches it again
        and again (measured: the partition never moves on). Each offset the fetch is
        stuck on is dead-lettered as a reference (no value) and skipped by a seek; a
        batch of n records takes n rounds. Reports fetched before the seek are dropped
        (:meth:`step`): taken as the next offset, they would dead-letter the valid
        record after the batch (measured with a real broker).
        """
        p, offset = record.partition(), record.offset()
        if err.code() == KafkaError._PARTITION_EOF:
            return
        stuck = (
            err.code() in UNDELIVERABLE
            and record.topic() == self.input_topic
            and p in self.core.partitions
            and offset is not None
            and offset >= 0
        )
        if not stuck:
            log.warning("consumer error: %s", err)
            return
        assert p is not None and offset is not None
        # Reported again (the batch's first offset) while the fetch is inside the batch:
        # the record still in the way is the first one not taken in yet.
        offset = max(offset, self.core.next_offset(p))
        self._take(p, offset, None, DecodeError("undeliverable", f"{err.name()}: {err.str()}"))
        self._sought.add(p)
        try:
            self.consumer.seek(TopicPartition(self.input_topic, p, offset + 1))
        except KafkaException as exc:  # the next error report of this batch seeks again
            log.warning("seek past %s[%d]@%d failed: %s", self.input_topic, p, offset, exc)

    def _tick(self) -> None:
        self.dead_letters.retry_due()
        try:
            self._decide()
            self._send_cuts()
            if not self._backing_off():  # retry the write only once the backoff is over
                self._flush_sink()
        except SinkUnavailable as exc:
            self._back_off(exc)
        self._commit()
        self._hold()
        self._report()

    def _hold(self) -> None:
        """While fetching is paused, tell every window-stage partition we are alive.

        No record means no partial, and a window stage that hears nothing from a
        source for long enough takes the stream as stopped and closes its windows
        by the wall clock; the records waiting in Kafka would then count late.
        """
        now = self.clock.now()
        if not self._paused or now - self._held_at < HOLD_INTERVAL:
            return
        if now - self._held_at > 2 * HOLD_INTERVAL:
            log.info("fetching paused: holding the windows of %s", self.core.partitions)
        self._held_at = now
        for source in self.core.partitions:
            marker = Hold(source).to_json()
            for partition in range(self.partials_partitions):
                self._produce(self.partials_topic, value=marker, partition=partition)

    def _report(self) -> None:
        metrics.BUFFERED_TRACES.set(len(self.core.buffer))
        line = self.volume.tick()
        if line is not None:
            log.info("%s", line)
        if self.clock.now() - self._lag_at >= LAG_INTERVAL:
            self._lag_at = self.clock.now()
            self._refresh_lag()

    def _refresh_lag(self) -> None:
        """Per partition, high watermark minus position, from librdkafka's local state."""
        partitions = [TopicPartition(self.input_topic, p) for p in self.core.partitions]
        if not partitions:
            return
        committed = self.core.commit_positions()
        try:
            positions = {tp.partition: tp.offset for tp in self.consumer.position(partitions)}
            for tp in partitions:
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                # No record consumed yet: the fetch starts at the commit position.
                position = positions.get(tp.partition, -1)
                if position < 0:
                    position = committed[tp.partition][0]
                if high >= 0:
                    metrics.CONSUMER_LAG.labels(str(tp.partition)).set(max(high - position, 0))
        except KafkaException as exc:  # a gauge is not worth stopping the loop for
            log.debug("consumer lag not refreshed: %s", exc)

    # -- stages ---------------------------------------------------------------------------
    def _decide(self) -> None:
        decided = self.core.decided()
        if decided:
            self.volume.record_decided(decided)
        for trace in decided:
            if trace.kept:
                self.sink.add(trace)
            else:
                self.core.resolve(list(trace.refs))

    def _send_cuts(self, force: bool = False) -> None:
        """Send due cuts; at most one announced cut per partition is in flight.

        The commit metadata holds ONE intent per partition, so a partition's
        next cut is announced only after the previous one was delivered; and
        cuts that failed are resent before anything new is cut (the aggregator
        keeps collecting meanwhile, so nothing is lost, the next cut is larger).
        """
        if not self._unsent:
            self._unsent = self.core.due_cuts(force)
        while self._unsent:
            wave, rest = _one_per_partition(self._unsent)
            if not self._send_wave(wave):
                self._unsent = [*(_announced(c) for c in wave), *rest]
                return
            self._unsent = rest

    def _send_wave(self, wave: list[Cut]) -> bool:
        """Announce (commit the intent), produce and flush; True once every partial is delivered."""
        to_announce = [c for c in wave if c.partials and not c.announced]
        for cut in to_announce:
            self.core.announce(cut)
        if to_announce:  # the intent must be durable before any partial of it is sent
            self._commit(only={c.partition for c in to_announce}, required=True)
        for cut in wave:
            for partial in cut.partials:
                self._produce(
                    self.partials_topic,
                    key=partial_key(partial.series),
                    value=partial.to_json(),
                    on_delivery=self._on_delivery,
                )
        if self.producer.flush(30) or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            log.warning("partials not delivered, will resend: %s", errors[:3])
            return False
        for cut in wave:
            self.core.delivered(cut)
        return True

    def _flush_sink(self, force: bool = False) -> None:
        """Write kept traces when due, in the sink's writer thread (``force``: all, waiting)."""
        if not force and self.sink.busy():
            return
        now = self.clock.now()
        due = force or self.sink.full or self.sink.splitting
        due = due or now - self._last_flush >= self.flush_interval
        while due and self.sink.pending_rows:
            refs = [ref for trace in self.sink.pending() for ref in trace.refs]
            self.core.mark_writes(refs)
            # The write marks must be durable before the insert; a no-op when an earlier
            # round already committed them (a failed commit leaves them pending here).
            self._commit(required=True)
            self.sink.flush(background=not force)
            self._last_flush = self.clock.now()
            due = force

    def _dead_letter(self, letter: DeadLetter) -> None:
        """To the DLQ; the record's commit waits for its acknowledgement (never raises)."""
        self.dead_letters.send(letter)

    def _rejected(self, traces: Sequence[DecidedTrace], exc: BatchRejected) -> None:
        """Kept traces whose rows the store refused: dead-lettered; their records commit
        once the DLQ has them (the rest of their batch is written)."""
        for trace in traces:
            self._dead_letter(self.dead_letters.fit(trace_letter(trace, exc)))

    def _commit(
        self, only: set[int] | None = None, required: bool = False, handover: bool = False
    ) -> None:
        """Commit positions and marks that changed; ``required`` raises if that fails.

        A plain commit that fails is simply repeated next round. A required one
        guards a side effect (sending a cut, inserting rows) that must not happen
        before its marks are durable, so its failure aborts the round. A
        ``handover`` commit (revoke, shutdown) also names what is decided ahead.
        """
        offsets = []
        for p, (position, progress) in self.core.commit_positions(handover).items():
            if only is not None and p not in only:
                continue
            marks = progress.render()
            if self._committed.get(p) != (position, marks):
                offsets.append(TopicPartition(self.input_topic, p, position, metadata=marks))
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

    def _back_off(self, exc: SinkUnavailable) -> None:
        self._paused_until = self.clock.now() + exc.retry_after
        self._hold_fetching()
        log.warning("backpressure: pausing consumption for %.1fs (%s)", exc.retry_after, exc)

    def _produce(self, topic: str, **kwargs: Any) -> None:
        """Produce, waiting for room when librdkafka's local queue is full."""
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.5)  # serves delivery callbacks, which frees the queue

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(str(err))

    def _shutdown(self) -> None:
        try:
            self._decide()
            self._send_cuts(force=True)
            self._flush_sink(force=True)
        except SinkUnavailable as exc:
            log.warning("stopping with unwritten spans; they will be replayed: %s", exc)
        self._commit(handover=True)
        self.consumer.close()
        self.producer.flush(10)


def partial_key(series: tuple[str, str]) -> bytes:
    """The key of a series' partials: the bytes of its window-table key.

    Same bytes, same murmur2 partition: a series' partials and its table state
    (``windows``, ``detectors``, keyed by :func:`series_key` through Faust's json
    key serializer) sit on the same partition number, so the worker that owns a
    series' partials after a rebalance also owns, and reloads, its state.

    >>> from aiokafka.partitioner import murmur2
    >>> from pipeline.tables import partition_of
    >>> import json
    >>> key = partial_key(("shop", "GET /"))
    >>> json.loads(key) == series_key("shop", "GET /")
    True
    >>> (murmur2(key) & 0x7FFFFFFF) % 6 == partition_of(series_key("shop", "GET /"), 6)
    True
    """
    return key_bytes(series_key(*series))


def _headers(record: Message) -> list[tuple[str, bytes]]:
    raw = record.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in items]


def _partitions_of(trace: DecidedTrace) -> set[int]:
    """Input partitions of a trace's records (one, when the Collector keys by trace id)."""
    return {int(ref[0]) for ref in trace.refs if isinstance(ref, tuple)}


def _announced(cut: Cut) -> Cut:
    return Cut(cut.partition, cut.offset, cut.partials, announced=True)


def _one_per_partition(cuts: list[Cut]) -> tuple[list[Cut], list[Cut]]:
    """The first cut of each partition, and the rest in their order.

    >>> a, b, c = Cut(0, 5, (), False), Cut(0, 9, (), False), Cut(1, 3, (), False)
    >>> _one_per_partition([a, b, c]) == ([a, c], [b])
    True
    """
    wave: list[Cut] = []
    rest: list[Cut] = []
    seen: set[int] = set()
    for cut in cuts:
        (rest if cut.partition in seen else wave).append(cut)
        seen.add(cut.partition)
    return wave, rest


def _forget_lag(partition: int) -> None:
    with contextlib.suppress(KeyError):  # never measured
        metrics.CONSUMER_LAG.remove(str(partition))
