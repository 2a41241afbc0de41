"""KafkaPartialsLog on a real broker: the group's committed offset and exact range reads."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from pipeline.errors import ServiceUnavailable
from pipeline.faust.partials_log import KafkaPartialsLog
from pipeline.kafka_client import KafkaSecurity

pytestmark = pytest.mark.integration

DEADLINE = 30.0
PLAIN = KafkaSecurity()


def fill(bootstrap: str, topic: str, partition: int, n: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(n):
        producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=partition)
    assert producer.flush(DEADLINE) == 0


def test_reads_exactly_the_range_and_knows_the_groups_commit(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory("partials", partitions=2)
    fill(kafka_bootstrap, topic, 1, 10)
    group = "windows-under-test"
    committer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    committer.commit(offsets=[TopicPartition(topic, 1, 4)], asynchronous=False)
    committer.close()
    log = KafkaPartialsLog(kafka_bootstrap, topic, group, timeout=DEADLINE, security=PLAIN)
    try:
        assert log.committed(1) == 4
        assert log.committed(0) is None
        got = log.read(1, range(2, 5))
        again = log.read(1, range(8, 10))  # a second read re-positions the same consumer
    finally:
        log.close()

    assert [(r.partition, r.offset, r.key, r.value) for r in got] == [
        (1, 2, b"k2", b"v2"),
        (1, 3, b"k3", b"v3"),
        (1, 4, b"k4", b"v4"),
    ]
    assert [r.value for r in again] == [b"v8", b"v9"]


def test_a_range_past_the_end_fails_clearly(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory("partials")
    fill(kafka_bootstrap, topic, 0, 3)
    log = KafkaPartialsLog(kafka_bootstrap, topic, "g-end", timeout=3.0, security=PLAIN)
    try:
        with pytest.raises(ServiceUnavailable, match=r"offsets \[3, 4\] not read"):
            log.read(0, range(1, 5))
    finally:
        log.close()
