"""``spanstream generate`` against a real broker: every manifest span comes back from Kafka."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipeline.cli import main
from pipeline.generate.encode import parse_otlp_json
from pipeline.generate.manifest import read_manifest

pytestmark = pytest.mark.integration

CONSUME_DEADLINE_S = 60.0


class Rec(NamedTuple):
    """One consumed record."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    partition: int
    offset: int


async def _consume(bootstrap: str, topic: str, expected: int) -> list[Rec]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Rec] = []
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    try:
        while len(records) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records += [
                    Rec(r.key, r.value, tuple(r.headers), r.partition, r.offset) for r in batch
                ]
    finally:
        await consumer.stop()
    return records


def _spans(value: bytes, encoding: str) -> list[tuple[str, str]]:
    if encoding == "otlp_json":
        req = parse_otlp_json(value)
    else:
        req = ExportTraceServiceRequest.FromString(value)
    return [
        (s.trace_id.hex(), s.span_id.hex())
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]


@pytest.mark.parametrize(
    "extra",
    [
        ["--encoding", "otlp_proto", "--split-traces", "0.3"],
        ["--encoding", "otlp_json", "--batch-traces", "7", "--compression", "gzip",
         "--content-type-header"],
    ],
)  # fmt: skip
def test_every_generated_span_arrives(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    tmp_path: Path,
    extra: list[str],
) -> None:
    topic = kafka_topic_factory("gen", partitions=3)
    manifest_path = tmp_path / "manifest.jsonl"
    argv = [
        "generate", "--bootstrap", kafka_bootstrap, "--topic", topic,
        "--start-time", "2024-05-01T00:00:00Z", "--count", "200", "--rate", "50",
        "--anomaly", "latency_spike:service=payment,start=1,duration=2,factor=4",
        "--manifest", str(manifest_path), *extra,
    ]  # fmt: skip
    assert main(argv) == 0
    manifest = read_manifest(manifest_path)
    encoding = extra[1]
    records = asyncio.run(_consume(kafka_bootstrap, topic, len(manifest.messages)))

    assert len(manifest.traces) == 200 and len(manifest.anomalies) == 1
    assert len(records) == len(manifest.messages) == manifest.summary["messages"]
    got = Counter(span for r in records for span in _spans(r.value, encoding))
    want = Counter((s.trace_id, s.span_id) for s in manifest.spans())
    assert got == want
    located = {(m["partition"], m["offset"]) for m in manifest.messages}
    assert located == {(r.partition, r.offset) for r in records}
    if "--batch-traces" in extra:
        assert {r.key for r in records} == {None}
        assert all(r.headers == (("content-type", b"application/json"),) for r in records)
    else:
        for r in records:
            assert r.headers == () and r.key is not None
            assert {t for t, _ in _spans(r.value, encoding)} == {r.key.decode()}


def test_realtime_mode_stamps_spans_with_the_wall_clock(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory("gen-rt")
    manifest_path = tmp_path / "manifest.jsonl"
    began = time.time_ns()
    argv = ["generate", "--bootstrap", kafka_bootstrap, "--topic", topic, "--rate", "20"]
    assert main([*argv, "--count", "20", "--manifest", str(manifest_path)]) == 0
    ended = time.time_ns()
    manifest = read_manifest(manifest_path)
    starts = [s.start_ns for s in manifest.spans()]
    # A trace is sent once its last span has ended, as an SDK exports it.
    assert (
        began <= min(starts) and max(s.start_ns + s.duration_ns for s in manifest.spans()) <= ended
    )
    # 20 traces at ~20/s are paced over roughly a second, not sent at once.
    assert max(starts) - min(starts) > 300_000_000
    records = asyncio.run(_consume(kafka_bootstrap, topic, 20))
    assert len(records) == 20
