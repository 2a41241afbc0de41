"""A scripted consumer, producer and receiver for the forwarder's loop (no broker, no HTTP)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from pipeline.clock import ManualClock
from pipeline.delivery.receivers import Answer, Receiver

TOPIC = "alerts"


@dataclass
class FakeRecord:
    """What the forwarder reads of a confluent-kafka Message."""

    _partition: int
    _offset: int
    _value: bytes | None
    _key: bytes | None = b"svc"

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def error(self) -> None:
        return None


class FakeConsumer:
    """One partition (0) holding ``values``; committed offset ``committed`` (-1001: none).

    ``poll`` advances the manual clock by its timeout when it has nothing to return, so
    backoff waits pass instantly. ``on_poll`` runs before each poll (to stop or revoke).
    """

    def __init__(self, values: list[bytes | None], clock: ManualClock, committed: int = -1001):
        self.records = [FakeRecord(0, i, v) for i, v in enumerate(values)]
        self.clock = clock
        self.committed_offset = committed
        self.position_ = 0
        self.commits: list[int] = []
        self.paused = False
        self.assigned: list[TopicPartition] = []
        self.on_poll: Callable[[FakeConsumer], None] = lambda _c: None
        self._callbacks: dict[str, Any] = {}
        self._assigned_once = False

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self._callbacks = callbacks

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, tp.partition, self.committed_offset) for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return 0, len(self.records)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions
        self.position_ = 0  # OFFSET_BEGINNING

    def assignment(self) -> list[TopicPartition]:
        return self.assigned

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused = True

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused = False

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, 0, self.position_)]

    def revoke(self) -> None:
        gone, self.assigned = self.assigned, []
        self._callbacks["on_revoke"](self, gone)

    def poll(self, timeout: float) -> FakeRecord | None:
        if self._callbacks and not self._assigned_once:
            self._assigned_once = True
            self._callbacks["on_assign"](self, [TopicPartition(TOPIC, 0)])
        self.on_poll(self)
        if self.assigned and not self.paused and self.position_ < len(self.records):
            self.position_ += 1
            return self.records[self.position_ - 1]
        self.clock.advance(timeout)
        return None

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.extend(tp.offset for tp in offsets)


@dataclass
class FakeProducer:
    """Acknowledges each produce through its callback at flush; ``fail`` sends fail first."""

    fail: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    _pending: list[Any] = field(default_factory=list)

    def produce(self, topic: str, **kwargs: Any) -> None:
        self._pending.append((topic, kwargs))

    def flush(self, timeout: float) -> int:
        for topic, kwargs in self._pending:
            if self.fail:
                self.fail -= 1
                kwargs["on_delivery"]("broker down", None)
            else:
                self.sent.append({"topic": topic, **kwargs})
                kwargs["on_delivery"](None, None)
        self._pending.clear()
        return 0


@dataclass
class ScriptedPost:
    """Stands in for ``receivers.post``: answers from ``script`` per receiver, then 200."""

    script: dict[str, list[int | None]] = field(default_factory=dict)
    calls: list[tuple[str, Any, int | None]] = field(default_factory=list)

    def __call__(self, receiver: Receiver, body: bytes, timeout: float) -> Answer:
        answers = self.script.get(receiver.name) or []
        status = answers.pop(0) if answers else 200
        self.calls.append((receiver.name, json.loads(body), status))
        return Answer(status, f"HTTP {status}")

    def alert_ids(self, receiver: str) -> list[str]:
        """alert_id of each alert ``receiver`` accepted, in order."""
        found = []
        for name, body, status in self.calls:
            if name == receiver and status == 200:
                for item in body if isinstance(body, list) else [body]:
                    found.append(
                        item["labels"]["alert_id"] if "labels" in item else item["alert_id"]
                    )
        return found
