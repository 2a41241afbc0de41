"""The ingest shell: a confluent-kafka consumer around the ingest core and the commit protocol.

Why not a Faust agent for this topic: Faust acks an event when the agent
moves on or raises and commits contiguous acks on its own schedule, while tail
sampling must hold records for seconds and commit them only once their spans
are durably decided; and Faust's per-event overhead alone held a trivial agent
near 25% of a bare consumer (measured before this module, see README). A
librdkafka consumer with manual commits does both: commit positions and the
marks of :mod:`pipeline.ingest.progress` go out together.

Each round reads records into :class:`~pipeline.ingest.core.IngestCore`, then
runs the steps of :mod:`pipeline.ingest.commit` that are due: decide traces,
send cuts of window partials, write kept traces, commit. The loop runs in its
own thread (everything here blocks); the Faust app in the main thread consumes
the partials this loop produces.
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
from pipeline.graph.shell import GraphFlusher
from pipeline.ingest.backpressure import FetchGate
from pipeline.ingest.commit import CommitProtocol
from pipeline.ingest.core import DeadLetter, IngestCore
from pipeline.ingest.cuts import CutSender
from pipeline.ingest.deadletter import DeadLetters, dlq_headers, trace_letter
from pipeline.ingest.volume import VolumeMeter
from pipeline.sampling.buffer import DecidedTrace
from pipeline.sinks.base import BatchingSink

log = logging.getLogger(__name__)
TraceSink = BatchingSink[DecidedTrace]
#: Seconds between consumer-lag refreshes (cached watermarks: no broker round trip).
LAG_INTERVAL = 5.0
#: Seconds to wait after a Kafka error before the next round.
KAFKA_RETRY_SECONDS = 1.0
#: Consumer errors about one fetched batch (it did not decompress within
#: ``receive.message.max.bytes``, or is corrupt): its records are dead-lettered.
UNDELIVERABLE = frozenset({KafkaError._BAD_COMPRESSION, KafkaError._BAD_MSG})
__all__ = ["IngestLoop", "dlq_headers"]


class IngestLoop:
    """Consume, decide, send partials, write and commit, in that order, until stopped."""

    def __init__(
        self,
        *,
        core: IngestCore,
        commits: CommitProtocol,
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
        graph: GraphFlusher | None = None,
    ) -> None:
        self.core = core
        #: writes and exports the service graph of decided traces (None: not derived)
        self.graph = graph
        self.commits = commits
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
        self._last_flush = self.clock.now()
        self._lag_at = float("-inf")
        #: partitions sought past a bad batch in the current round
        self._sought: set[int] = set()
        self.gate = FetchGate(
            consumer=consumer,
            core=core,
            sink=sink,
            clock=self.clock,
            produce=self._produce,
            partials_topic=partials_topic,
            partials_partitions=partials_partitions,
            max_buffered_traces=max_buffered_traces,
        )
        self.cuts = CutSender(
            core=core,
            commits=commits,
            producer=producer,
            produce=self._produce,
            topic=partials_topic,
        )
        self.dead_letters = DeadLetters(
            produce=self._produce,
            topic=dlq_topic,
            source_topic=input_topic,
            clock=self.clock,
            on_delivered=commits.dead_lettered,
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
        for resume in self.commits.resume(partitions):
            self.core.assign(resume.partition, resume.marks, resume.recut_through)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Hand over cleanly: write what is decided, send partials, commit, then forget."""
        log.info("partitions revoked: %s", [tp.partition for tp in partitions])
        try:
            self._decide()
            self.cuts.send(force=True)
            self._flush_sink(force=True)
            self.commits.hand_over()
        except SinkUnavailable as exc:
            log.warning("revoked while ClickHouse is unavailable; next owner replays: %s", exc)
        except KafkaException as exc:  # e.g. the group moved on while the broker was away
            log.warning("revoked without a final commit; next owner replays: %s", exc)
        self.gate.release(partitions)  # while still assigned
        gone = {tp.partition for tp in partitions}
        # Kept traces still waiting to be written belong to the next owner now, which
        # replays their records. (A sealed batch stays: its retry must keep its token.)
        # A trace that also holds records of a partition we keep is written by us: its
        # other records are tracked here and would never be resolved otherwise.
        dropped = self.sink.discard(lambda trace: _partitions_of(trace) <= gone)
        if dropped:
            log.info("left %d unwritten traces of revoked partitions to their next owner", dropped)
        self.commits.revoke(gone)
        for p in gone:
            self.core.revoke(p)
            _forget_lag(p)
        # The next owner dead-letters these itself: sending them from here too would
        # only add duplicates.
        self.cuts.forget(gone)
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
        self.gate.update()
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
        result, traces = self.core.on_record(partition, offset, key, value, headers, failed)
        self.commits.track(partition, offset, traces)
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
        offset = max(offset, self.commits.next_offset(p))
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
            if self.graph is not None:
                self.graph.tick()
            self.cuts.send()
            if not self.gate.backing_off():  # retry the write only once the backoff is over
                self._flush_sink()
        except SinkUnavailable as exc:
            self.gate.back_off(exc)
        self.commits.commit()
        self.gate.hold()
        self._report()

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
        committed = self.commits.positions()
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
        """Step 4: kept traces to the sink, dropped ones are done."""
        decided = self.core.decided()
        if decided:
            self.volume.record_decided(decided)
        for trace in decided:
            if trace.kept:
                self.sink.add(trace)
            else:
                self.commits.resolve(trace.refs)

    def _flush_sink(self, force: bool = False) -> None:
        """Steps 5 and 6: write kept traces when due, in the sink's writer thread
        (``force``: all, waiting for each write)."""
        if not force:
            self._written(self.sink.poll())
            if self.sink.writing:
                return
        now = self.clock.now()
        due = force or self.sink.full or self.sink.splitting
        due = due or now - self._last_flush >= self.flush_interval
        while due and self.sink.pending_rows:
            self.commits.mark_writes(self.sink.pending())
            self._written(self.sink.flush(background=not force))
            self._last_flush = self.clock.now()
            due = force

    def _written(self, traces: Sequence[DecidedTrace]) -> None:
        if traces:
            self.commits.written(traces)
            self.volume.record_written(traces)

    def _dead_letter(self, letter: DeadLetter) -> None:
        """To the DLQ; the record's commit waits for its acknowledgement (never raises)."""
        self.dead_letters.send(letter)

    def _rejected(self, traces: Sequence[DecidedTrace], exc: BatchRejected) -> None:
        """Kept traces whose rows the store refused: dead-lettered; their records commit
        once the DLQ has them (the rest of their batch is written)."""
        for trace in traces:
            self._dead_letter(self.dead_letters.fit(trace_letter(trace, exc)))

    def _produce(self, topic: str, **kwargs: Any) -> None:
        """Produce, waiting for room when librdkafka's local queue is full."""
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.5)  # serves delivery callbacks, which frees the queue

    def _shutdown(self) -> None:
        try:
            self._decide()
            self.cuts.send(force=True)
            self._flush_sink(force=True)
        except SinkUnavailable as exc:
            log.warning("stopping with unwritten spans; they will be replayed: %s", exc)
        if self.graph is not None:
            self.graph.tick(force=True)
        self.commits.hand_over()
        self.consumer.close()
        self.producer.flush(10)


def _headers(record: Message) -> list[tuple[str, bytes]]:
    raw = record.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in items]


def _partitions_of(trace: DecidedTrace) -> set[int]:
    """Input partitions of a trace's records (one, when the Collector keys by trace id)."""
    return {int(ref[0]) for ref in trace.refs if isinstance(ref, tuple)}


def _forget_lag(partition: int) -> None:
    with contextlib.suppress(KeyError):  # never measured
        metrics.CONSUMER_LAG.remove(str(partition))
