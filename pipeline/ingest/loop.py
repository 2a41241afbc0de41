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

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from pipeline import metrics
from pipeline.errors import SinkUnavailable
from pipeline.ingest.core import Cut, DeadLetter, IngestCore
from pipeline.ingest.progress import Progress
from pipeline.otlp.decode import Decoded
from pipeline.sampling.buffer import DecidedTrace
from pipeline.sinks.base import BatchingSink

log = logging.getLogger(__name__)
TraceSink = BatchingSink[DecidedTrace]


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
        on_decided: Callable[[Sequence[DecidedTrace]], None] | None = None,
    ) -> None:
        self.core = core
        self.consumer = consumer
        self.producer = producer
        self.sink = sink
        self.input_topic = input_topic
        self.partials_topic = partials_topic
        self.dlq_topic = dlq_topic
        self.flush_interval = flush_interval
        self.on_decided = on_decided
        self.stop_event = threading.Event()
        self._unsent: list[Cut] = []
        self._committed: dict[int, tuple[int, str]] = {}
        self._last_flush = time.monotonic()
        self._paused_until = 0.0
        self._delivery_errors: list[str] = []
        self._dlq_retry: list[DeadLetter] = []

    # -- rebalance ----------------------------------------------------------------------
    def subscribe(self) -> None:
        self.consumer.subscribe(
            [self.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        for tp in committed:
            position = tp.offset if tp.offset >= 0 else self._low_watermark(tp)
            self.core.assign(tp.partition, Progress.parse(tp.metadata), position)

    def _low_watermark(self, tp: TopicPartition) -> int:
        low, _high = self.consumer.get_watermark_offsets(tp, timeout=10)
        return int(low)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Hand over cleanly: write what is decided, send partials, commit, then forget."""
        log.info("partitions revoked: %s", [tp.partition for tp in partitions])
        try:
            self._decide()
            self._send_cuts(force=True)
            self._flush_sink(force=True)
            self._commit()
        except SinkUnavailable as exc:
            log.warning("revoked while ClickHouse is unavailable; next owner replays: %s", exc)
        for tp in partitions:
            self.core.revoke(tp.partition)
            self._committed.pop(tp.partition, None)

    # -- main loop ----------------------------------------------------------------------
    def run(self) -> None:
        """Block until :attr:`stop_event` is set; then commit what is safe and leave the group."""
        self.subscribe()
        try:
            while not self.stop_event.is_set():
                self.step()
        finally:
            self._shutdown()

    def step(self, batch: int = 500, timeout: float = 0.1) -> int:
        """One poll-and-tick round; returns the records consumed (for tests and benchmarks)."""
        paused = time.monotonic() < self._paused_until
        records = [] if paused else self.consumer.consume(batch, timeout)
        if paused:
            self.consumer.poll(0)  # keep group membership alive while backing off
        for record in records:
            self._on_record(record)
        self.producer.poll(0)
        self._tick()
        return len(records)

    def _on_record(self, record: Message) -> None:
        err = record.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", err)
            return
        result = self.core.on_record(
            int(record.partition() or 0),
            int(record.offset() or 0),
            record.key(),
            record.value(),
            _headers(record),
        )
        if isinstance(result, DeadLetter):
            metrics.DECODE_ERRORS.labels(result.reason).inc()
            self._dead_letter(result)
        else:
            _count_in(result)

    def _tick(self) -> None:
        retry, self._dlq_retry = self._dlq_retry, []
        for letter in retry:
            self._dead_letter(letter)
        try:
            self._decide()
            self._send_cuts()
            self._flush_sink()
        except SinkUnavailable as exc:
            self._back_off(exc)
        self._commit()

    # -- stages ---------------------------------------------------------------------------
    def _decide(self) -> None:
        decided = self.core.decided()
        if self.on_decided is not None and decided:
            self.on_decided(decided)
        for trace in decided:
            if trace.kept:
                self.sink.add(trace)
            else:
                self.core.resolve(list(trace.refs))

    def _send_cuts(self, force: bool = False) -> None:
        self._unsent.extend(self.core.due_cuts(force))
        if not self._unsent:
            return
        to_announce = [c for c in self._unsent if c.partials and not c.announced]
        for cut in to_announce:
            self.core.announce(cut)
        if to_announce:
            self._commit(only={c.partition for c in to_announce})
        for cut in self._unsent:
            for partial in cut.partials:
                self.producer.produce(
                    self.partials_topic,
                    key=partial_key(partial.series),
                    value=partial.to_json(),
                    on_delivery=self._on_delivery,
                )
        if self.producer.flush(30) or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            log.warning("partials not delivered, will resend: %s", errors[:3])
            self._unsent = [_announced(c) for c in self._unsent]
            return
        for cut in self._unsent:
            self.core.delivered(cut)
        self._unsent = []

    def _flush_sink(self, force: bool = False) -> None:
        due = force or self.sink.full or time.monotonic() - self._last_flush >= self.flush_interval
        if not due or not self.sink.pending_rows:
            return
        refs = [ref for trace in self.sink.pending() for ref in trace.refs]
        if self.core.mark_writes(refs):
            self._commit()
        self.sink.flush()
        self._last_flush = time.monotonic()

    def _dead_letter(self, letter: DeadLetter) -> None:
        log.warning(
            "dead-lettering %s[%d]@%d: %s: %s",
            self.input_topic,
            letter.partition,
            letter.offset,
            letter.reason,
            letter.detail,
        )
        headers: list[tuple[str, str | bytes | None]] = [
            *letter.headers,
            *dlq_headers(self.input_topic, letter),
        ]

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                metrics.DLQ_RECORDS.labels(letter.reason).inc()
                self.core.dead_lettered(letter)
            else:  # retried on the next poll round; the record's offset stays uncommitted
                log.error("DLQ delivery failed for offset %d: %s", letter.offset, err)
                self._dlq_retry.append(letter)

        self.producer.produce(
            self.dlq_topic,
            key=letter.key,
            value=letter.value,
            headers=headers,
            on_delivery=delivered,
        )

    def _commit(self, only: set[int] | None = None) -> None:
        offsets = []
        for p, (position, progress) in self.core.commit_positions().items():
            if only is not None and p not in only:
                continue
            marks = progress.render()
            if self._committed.get(p) != (position, marks):
                offsets.append(TopicPartition(self.input_topic, p, position, metadata=marks))
        if not offsets:
            return
        self.consumer.commit(offsets=offsets, asynchronous=False)
        for tp in offsets:
            self._committed[tp.partition] = (tp.offset, tp.metadata or "")

    def _back_off(self, exc: SinkUnavailable) -> None:
        self._paused_until = time.monotonic() + exc.retry_after
        log.warning("backpressure: pausing consumption for %.1fs (%s)", exc.retry_after, exc)

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
        self._commit()
        self.consumer.close()
        self.producer.flush(10)


def partial_key(series: tuple[str, str]) -> bytes:
    """Partials of one (service, operation) share a key, hence a partials partition."""
    return f"{series[0]}\x1f{series[1]}".encode()


def dlq_headers(topic: str, letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Headers naming the error and the source record, added to the original ones."""
    return [
        ("spanstream.error.reason", letter.reason.encode()),
        ("spanstream.error.detail", letter.detail[:1000].encode("utf-8", "replace")),
        ("spanstream.source.topic", topic.encode()),
        ("spanstream.source.partition", str(letter.partition).encode()),
        ("spanstream.source.offset", str(letter.offset).encode()),
    ]


def _headers(record: Message) -> list[tuple[str, bytes]]:
    raw = record.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in items]


def _announced(cut: Cut) -> Cut:
    return Cut(cut.partition, cut.offset, cut.partials, announced=True)


def _count_in(decoded: Decoded) -> None:
    metrics.MESSAGES_IN.labels(decoded.encoding).inc()
    counts: dict[str, int] = {}
    for span in decoded.spans:
        counts[span.service_name] = counts.get(span.service_name, 0) + 1
    for service, n in counts.items():
        metrics.SPANS_IN.labels(service).inc(n)


def consumer_config(bootstrap: str, group: str, **extra: Any) -> dict[str, Any]:
    """librdkafka settings of the ingest consumer (manual commits, start at the earliest)."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.partition.eof": False,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        **extra,
    }


def producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """Idempotent, acks=all, and the Java (murmur2) partitioner so partials land on the same
    partition as Faust's changelog for the same key."""
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        "partitioner": "murmur2_random",
        **extra,
    }
