"""LocalKafka (kill -9 and restart keep data) and the pinned broker with each client we use.

aiokafka (under Faust) and confluent-kafka must both work with the broker version
pinned in infra/kafka/kafka.sh; these tests are what catches a broker bump that
breaks one of them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CKTopicPartition

from pipeline.errors import ServiceUnavailable
from pipeline.local.kafka import LocalKafka, kafka_installed

pytestmark = pytest.mark.integration

DEADLINE = 30.0


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i, value in enumerate(values):
        producer.produce(topic, key=str(i).encode(), value=value)
    assert producer.flush(DEADLINE) == 0


def consume(bootstrap: str, topic: str, count: int, group: str) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + DEADLINE
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            value = None if msg is None or msg.error() else msg.value()
            if value is not None:
                got.append(value)
    finally:
        consumer.close()
    return got


def test_missing_jars_give_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANSTREAM_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ServiceUnavailable, match=r"run infra/kafka/kafka\.sh install"):
        LocalKafka(tmp_path / "kafka").start()


def test_kill_and_restart_keep_acknowledged_messages(tmp_path: Path) -> None:
    if not kafka_installed():
        if os.environ.get("CI") == "true":
            pytest.fail("Kafka jars or java missing under CI=true")
        pytest.skip("Kafka jars or java missing: run infra/kafka/kafka.sh install")
    from confluent_kafka.admin import AdminClient, NewTopic

    values = [f"span-batch-{i}".encode() for i in range(20)]
    with LocalKafka(tmp_path / "kafka") as kafka:
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        admin.create_topics([NewTopic("survivor", 2, 1)])["survivor"].result(DEADLINE)
        produce(kafka.bootstrap, "survivor", values)
        old_pid, old_bootstrap = kafka.pid, kafka.bootstrap

        kafka.kill()
        assert kafka.pid is None
        kafka.restart()

        assert kafka.pid not in (None, old_pid)
        assert kafka.bootstrap == old_bootstrap
        assert sorted(consume(kafka.bootstrap, "survivor", 20, "after-restart")) == sorted(values)
    assert kafka.pid is None


def test_aiokafka_producer_and_group_commit(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory("aio", partitions=2)

    async def scenario() -> tuple[list[bytes], int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            for i in range(6):
                await producer.send_and_wait(topic, f"v{i}".encode(), key=f"k{i}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=f"{topic}-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        got: list[bytes] = []
        try:
            deadline = time.monotonic() + DEADLINE
            while len(got) < 6 and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                got += [m.value for records in batches.values() for m in records]
            await consumer.commit()
            committed = [await consumer.committed(TopicPartition(topic, p)) for p in (0, 1)]
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in (0, 1)])
        finally:
            await consumer.stop()
        return got, sum(c or 0 for c in committed), sum(ends.values())

    got, committed, end = asyncio.run(scenario())
    assert sorted(got) == [f"v{i}".encode() for i in range(6)]
    assert committed == end == 6


FAUST_APP = """
import os, faust
app = faust.App("{app_id}", broker="kafka://{bootstrap}", store="memory://",
                web_enabled=False, topic_partitions=2)
seen = app.Table("seen", default=int)

@app.agent(app.topic("{topic}", value_serializer="raw"))
async def record(stream):
    async for value in stream:
        seen["n"] += 1
        with open("{out}", "a") as f:
            f.write(value.decode() + "\\n")
"""


def test_faust_worker_consumes_and_commits(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory("faust", partitions=2)
    app_id, out = f"{topic}-app", tmp_path / "seen.txt"
    (tmp_path / "compat_app.py").write_text(
        FAUST_APP.format(app_id=app_id, bootstrap=kafka_bootstrap, topic=topic, out=out)
    )
    values = [f"f{i}".encode() for i in range(5)]
    produce(kafka_bootstrap, topic, values)
    faust = Path(sys.executable).with_name("faust")
    worker = subprocess.Popen(
        [str(faust), "-A", "compat_app", "worker", "-l", "warn"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("w"),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.poll() is None:
            if out.exists() and len(out.read_text().split()) >= len(values):
                break
            time.sleep(0.2)
        assert sorted(out.read_text().split()) == sorted(v.decode() for v in values)
    finally:
        worker.terminate()
        worker.wait(DEADLINE)
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-2000:]
    committed = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": app_id}).committed(
        [CKTopicPartition(topic, p) for p in (0, 1)], timeout=DEADLINE
    )
    assert sum(max(tp.offset, 0) for tp in committed) == len(values)
