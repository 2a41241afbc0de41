"""librdkafka settings of the ingest stage's consumer and producer, in one place.

The window stage (Faust) uses the same session timeout, so both stages of a
killed worker give up their partitions at the same time.
"""

from __future__ import annotations

from typing import Any

from pipeline.kafka_client import KafkaSecurity, librdkafka_config

#: Group session timeout of both stages' consumers, in ms.
SESSION_TIMEOUT_MS = 15_000
#: One fetch response at most (librdkafka's default is 50 MB).
FETCH_MAX_BYTES = 16 * 1024 * 1024
#: librdkafka's largest response, and the most a zstd batch may decompress to (measured:
#: a 50 MB zstd bomb under a 32 MiB bound is a _BAD_COMPRESSION error, 48 MB peak RSS,
#: where the 100 MB default hands the 50 MB over at 123 MB). gzip and lz4 batches are not
#: bounded by it (a 200 MB gzip bomb still arrives whole, 409 MB peak): the input
#: topic's max.message.bytes bounds their compressed size (docs/reliability.md).
RECEIVE_MAX_BYTES = 2 * FETCH_MAX_BYTES + 512


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
        "fetch.max.bytes": FETCH_MAX_BYTES,
        "receive.message.max.bytes": RECEIVE_MAX_BYTES,
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
