"""librdkafka settings: what delivery and partition alignment depend on."""

from __future__ import annotations

from confluent_kafka import Consumer

from pipeline.ingest.kafka_config import SESSION_TIMEOUT_MS, consumer_config, producer_config
from pipeline.kafka_client import KafkaSecurity
from pipeline.windows.stage import idle_close_seconds


def test_the_consumer_commits_only_by_hand_and_fails_over_within_the_session_timeout() -> None:
    config = consumer_config("k:9092", "g", KafkaSecurity(), **{"client.id": "w1"})
    assert (config["enable.auto.commit"], config["enable.auto.offset.store"]) == (False, False)
    assert config["session.timeout.ms"] == SESSION_TIMEOUT_MS
    assert config["client.id"] == "w1"  # extra settings pass through


def test_partials_use_the_java_partitioner_and_an_idempotent_producer() -> None:
    config = producer_config("k:9092", KafkaSecurity())
    # Faust's changelog partitions keys with murmur2: partials must land alike.
    assert config["partitioner"] == "murmur2_random"
    assert (config["enable.idempotence"], config["acks"]) == (True, "all")


def test_windows_wait_out_a_failover_before_counting_a_silent_partition_idle() -> None:
    assert idle_close_seconds(10) >= 2 * SESSION_TIMEOUT_MS / 1000


def test_the_consumer_bounds_what_a_zstd_batch_may_decompress_to() -> None:
    """librdkafka refuses receive.message.max.bytes < fetch.max.bytes + 512 at start; the
    bound is what keeps a zstd bomb from being decompressed (issue #12)."""
    config = consumer_config("127.0.0.1:1", "g", KafkaSecurity())
    assert config["receive.message.max.bytes"] >= config["fetch.max.bytes"] + 512
    assert config["receive.message.max.bytes"] <= 64 * 1024 * 1024
    Consumer(config).close()
