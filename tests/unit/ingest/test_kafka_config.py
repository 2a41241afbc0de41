"""librdkafka settings: what delivery and partition alignment depend on."""

from __future__ import annotations

from pipeline.app import idle_close_seconds
from pipeline.ingest.kafka_config import SESSION_TIMEOUT_MS, consumer_config, producer_config
from pipeline.kafka_client import KafkaSecurity


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
