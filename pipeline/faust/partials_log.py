"""Direct reads of the partials topic, for the records the window stage's consumer skipped.

See :mod:`pipeline.faust.continuity` for why. :class:`KafkaPartialsLog` reads
with its own confluent-kafka consumer (assigned, never subscribed, so it never
joins or disturbs the window stage's group; it only looks up that group's
committed offsets). :class:`MemoryPartialsLog` is the same contract on a list,
for tests of the window stage without a broker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, TopicPartition

from pipeline.errors import ServiceUnavailable
from pipeline.kafka_client import KafkaSecurity, librdkafka_config
from pipeline.windows.stage import Record


class PartialsLog(Protocol):
    """Where skipped partials are read back from."""

    def committed(self, partition: int) -> int | None:
        """The window stage group's committed offset of ``partition`` (None: none yet)."""
        ...

    def read(self, partition: int, offsets: range) -> list[Record]:
        """Every record of ``partition`` at ``offsets``, in offset order."""
        ...


class KafkaPartialsLog:
    """The partials topic on a broker; ``group`` is the window stage's consumer group."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        timeout: float = 30.0,
        *,
        security: KafkaSecurity,
    ) -> None:
        self.topic = topic
        self.timeout = timeout
        connect = librdkafka_config(bootstrap, security)
        self._group = Consumer({**connect, "group.id": group})
        self._reader = Consumer(
            {
                **connect,
                "group.id": f"{group}-reread-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )

    def committed(self, partition: int) -> int | None:
        (tp,) = self._group.committed([TopicPartition(self.topic, partition)], self.timeout)
        return tp.offset if tp.offset >= 0 else None

    def read(self, partition: int, offsets: range) -> list[Record]:
        if not offsets:
            return []
        self._reader.assign([TopicPartition(self.topic, partition, offsets.start)])
        found: dict[int, Record] = {}
        deadline = time.monotonic() + self.timeout
        try:
            while len(found) < len(offsets):
                if time.monotonic() > deadline:
                    missing = sorted(set(offsets) - set(found))[:5]
                    raise ServiceUnavailable(
                        f"{self.topic}[{partition}]: offsets {missing} not read within "
                        f"{self.timeout:.0f}s"
                    )
                for msg in self._reader.consume(500, 0.5):
                    offset = msg.offset()
                    if msg.error() is None and offset is not None and offset in offsets:
                        found[offset] = _record(msg)
        finally:
            self._reader.unassign()
        return [found[o] for o in offsets]

    def close(self) -> None:
        self._group.close()
        self._reader.close()


class MemoryPartialsLog:
    """The contract on lists (a test double shipped as code): ``log[p]`` is partition p."""

    def __init__(self, topic: str, values: dict[int, Sequence[bytes]]) -> None:
        self.topic = topic
        self.log = {p: list(v) for p, v in values.items()}
        self.commits: dict[int, int] = {}
        self.reads: list[tuple[int, range]] = []

    def committed(self, partition: int) -> int | None:
        return self.commits.get(partition)

    def read(self, partition: int, offsets: range) -> list[Record]:
        self.reads.append((partition, offsets))
        values = self.log[partition]
        return [Record(self.topic, partition, o, None, values[o]) for o in offsets]


def _record(msg: Any) -> Record:
    return Record(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value())
