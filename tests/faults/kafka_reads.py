"""Reading a scenario's topics and its group's commits back, with deadlines."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Any]:
    """Every record of ``topic`` (confluent_kafka Messages), read up to the high watermarks."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        ends = {}
        for tp in tps:
            low, high = consumer.get_watermark_offsets(tp, timeout=30)
            if high > low:
                ends[tp.partition] = high
        consumer.assign(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is not None:
                    continue
                out.append(msg)
                partition = int(msg.partition() or 0)
                if int(msg.offset() or 0) + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
        assert not ends, f"{topic}: not read to the end within {timeout}s: {ends}"
        return out
    finally:
        consumer.close()


def high_watermarks(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, str]]:
    """The group's committed (offset, metadata) per input partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        tps = [TopicPartition(topic, p) for p in meta.partitions]
        return {tp.partition: (tp.offset, tp.metadata or "") for tp in consumer.committed(tps, 30)}
    finally:
        consumer.close()
