"""In-process doubles of the confluent-kafka Consumer and Producer, just what IngestLoop uses.

The consumer keeps one log per partition of one topic and behaves like
librdkafka where the loop depends on it: paused partitions yield nothing,
``committed`` returns what ``commit`` stored (``OFFSET_INVALID`` before), the
cached high watermark is the log end. Every commit and delivery is appended to
a shared ``events`` list so tests can check the order of side effects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

OFFSET_INVALID = -1001
Event = tuple[Any, ...]
Callback = Callable[[Any, list[TopicPartition]], None]


@dataclass
class FakeMessage:
    """A consumed or produced record; the accessor methods mirror confluent_kafka.Message."""

    topic_: str
    partition_: int
    offset_: int
    key_: bytes | None
    value_: bytes | None
    headers_: list[tuple[str, bytes]] = field(default_factory=list)
    error_: KafkaError | None = None

    def error(self) -> KafkaError | None:
        return self.error_

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> list[tuple[str, bytes]]:
        return self.headers_


class FakeConsumer:
    """One topic's partitions as in-memory logs; ``assign``/``revoke`` play the group's part."""

    def __init__(self, topic: str, events: list[Event]) -> None:
        self.topic = topic
        self.events = events
        self.logs: dict[int, list[FakeMessage]] = {}
        self.positions: dict[int, int] = {}
        self.stored: dict[int, TopicPartition] = {}
        self.paused: set[int] = set()
        #: extra reports of an undecompressable batch returned with the first one
        self.stale_reports = 2
        self.resumed: list[list[int]] = []
        self.closed = False
        self._on_assign: Callback | None = None
        self._on_revoke: Callback | None = None

    # -- test controls ----------------------------------------------------------------
    def append(
        self,
        partition: int,
        value: bytes | None,
        key: bytes | None = None,
        error: KafkaError | None = None,
    ) -> int:
        """Append a record; ``error``: librdkafka reports it instead (a batch that does not
        decompress), and fetches it again until the consumer seeks past it."""
        log = self.logs.setdefault(partition, [])
        log.append(FakeMessage(self.topic, partition, len(log), key, value, error_=error))
        return len(log) - 1

    def assign(self, *partitions: int) -> None:
        """A rebalance hands these partitions to the loop (as librdkafka does, in a callback)."""
        assert self._on_assign is not None, "subscribe first"
        self._on_assign(self, [TopicPartition(self.topic, p) for p in partitions])
        for p in partitions:
            stored = self.stored.get(p)
            self.positions[p] = stored.offset if stored is not None else 0

    def revoke(self, *partitions: int) -> None:
        assert self._on_revoke is not None, "subscribe first"
        self._on_revoke(self, [TopicPartition(self.topic, p) for p in partitions])
        for p in partitions:
            self.positions.pop(p, None)

    def restart(self) -> None:
        """A new worker process: the logs and the group's commits stay, the rest goes."""
        self.positions.clear()
        self.paused.clear()
        self.resumed.clear()
        self._on_assign = self._on_revoke = None

    def committed_offset(self, partition: int) -> int:
        stored = self.stored.get(partition)
        return OFFSET_INVALID if stored is None else int(stored.offset)

    # -- the Consumer API the loop calls --------------------------------------------
    def subscribe(self, topics: list[str], on_assign: Callback, on_revoke: Callback) -> None:
        assert topics == [self.topic]
        self._on_assign, self._on_revoke = on_assign, on_revoke

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        out = []
        for tp in partitions:
            stored = self.stored.get(tp.partition)
            if stored is None:
                out.append(TopicPartition(self.topic, tp.partition, OFFSET_INVALID))
            else:
                out.append(stored)
        return out

    def get_watermark_offsets(
        self, tp: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        return 0, len(self.logs.get(tp.partition, []))

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        out: list[FakeMessage] = []
        for p in sorted(self.positions):
            if p in self.paused:
                continue
            log = self.logs.get(p, [])
            while self.positions[p] < len(log) and len(out) < num_messages:
                message = log[self.positions[p]]
                out.append(message)
                if message.error_ is not None:
                    # As librdkafka (measured): the batch is fetched again until a seek
                    # past it, and prefetched reports of it may already be queued.
                    out.extend([message] * self.stale_reports)
                    break
                self.positions[p] += 1
        return out

    def seek(self, tp: TopicPartition) -> None:
        self.positions[tp.partition] = tp.offset

    def poll(self, timeout: float) -> None:
        return None

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in sorted(self.positions)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update(tp.partition for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.resumed.append(sorted(tp.partition for tp in partitions))
        self.paused.difference_update(tp.partition for tp in partitions)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(self.topic, tp.partition, self.positions.get(tp.partition, -1))
            for tp in partitions
        ]

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        assert not asynchronous, "the loop commits synchronously"
        for tp in offsets:
            self.stored[tp.partition] = tp
            self.events.append(("commit", tp.partition, tp.offset, tp.metadata))

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """Queues records and delivers them on ``poll``/``flush``; ``down`` topics fail delivery.

    Like librdkafka, ``produce`` raises MSG_SIZE_TOO_LARGE for a value over
    ``max_bytes`` (its ``message.max.bytes``); a value over ``topic_max_bytes[topic]``
    fails its delivery with the same code (the topic's ``max.message.bytes``).
    """

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.max_bytes = 1_000_000
        self.topic_max_bytes: dict[str, int] = {}
        self.attempts = 0
        self.down: set[str] = set()
        self.delivered: dict[str, list[FakeMessage]] = {}
        self.failed = 0
        self._queue: list[tuple[FakeMessage, Callable[[Any, Any], None] | None]] = []

    def restart(self) -> None:
        """A new worker process: what was delivered stays, the local queue is gone."""
        self._queue.clear()

    def produce(
        self,
        topic: str,
        key: bytes | None = None,
        value: bytes | None = None,
        headers: list[tuple[str, Any]] | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
        partition: int = 0,
    ) -> None:
        self.attempts += 1
        if value is not None and len(value) > self.max_bytes:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        raw = [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in headers or []]
        self._queue.append((FakeMessage(topic, partition, -1, key, value, raw), on_delivery))

    def poll(self, timeout: float = 0.0) -> int:
        queue, self._queue = self._queue, []
        for message, callback in queue:
            err = KafkaError(KafkaError._MSG_TIMED_OUT) if message.topic_ in self.down else None
            if len(message.value_ or b"") > self.topic_max_bytes.get(message.topic_, 1 << 40):
                err = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
            if err is None:
                log = self.delivered.setdefault(message.topic_, [])
                message.offset_ = len(log)
                log.append(message)
                self.events.append(("delivered", message.topic_, message.value_))
            else:
                self.failed += 1
            if callback is not None:
                callback(err, message)
        return len(queue)

    def flush(self, timeout: float = 0.0) -> int:
        self.poll(0)
        return 0
