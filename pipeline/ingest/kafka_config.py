"""librdkafka settings of the ingest stage's consumer and producer, in one place.

The window stage (Faust) uses the same session timeout, so both stages of a
killed worker give up their partitions at the same time.
"""

from __future__ import annotations

from typing import Any

from pipeline.kafka_client import KafkaSecurity, librdkafka_config

#: Group session timeout of both stages' consumers, in ms.
SESSION_TIMEOUT_MS = 15_000


def consumer_config(
    bootstrap: str, group: str, security: KafkaSecurity, **extra: Any
) -> dict[str, Any]:
    """librdkafka settings of the ingest consumer (manual commits, start at the earliest)."""
    return {
        **librdkafka_config(bootstrap, security),
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        # A killed worker's partitions move after this long (Kafka's default is 45 s);
        # librdkafka heartbeats from its own thread, so a busy GIL does not delay them.
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": 3000,
        "enable.partition.eof": False,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        **extra,
    }


def producer_config(bootstrap: str, security: KafkaSecurity, **extra: Any) -> dict[str, Any]:
    """Idempotent, acks=all, and the Java (murmur2) partitioner so partials land on the same
    partition as Faust's changelog for the same key."""
    return {
        **librdkafka_config(bootstrap, security),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        "partitioner": "murmur2_random",
        **extra,
    }
