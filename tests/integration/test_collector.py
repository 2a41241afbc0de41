"""telemetrygen -> the real otelcol-spanstream -> a real Kafka topic, decoded back.

Needs infra/collector/build.sh to have run (skips locally without it, fails
under CI=true) and a Kafka broker (the ``kafka_bootstrap`` fixture).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipeline.local.process import free_port
from tests.harness.collector import (
    COLLECTOR_DIR,
    LocalCollector,
    collector_binary,
    collector_built,
    run_telemetrygen,
)

pytestmark = pytest.mark.integration

#: Seconds for every span telemetrygen sent to show up in the topic.
CONSUME_TIMEOUT = 60.0
TRACE_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(autouse=True, scope="session")
def _collector_built() -> None:
    if collector_built():
        return
    reason = "otelcol-spanstream/telemetrygen not built: run infra/collector/build.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(f"needed under CI=true: {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Record:
    """One Kafka record from the exporter: its key and the spans' trace ids and services."""

    key: str
    trace_ids: list[str]
    services: set[str]


def _service(attributes: list[dict[str, object]]) -> str:
    for attr in attributes:
        if attr["key"] == "service.name":
            return str(attr["value"]["stringValue"])  # type: ignore[index]
    return ""


def decode_json(value: bytes) -> tuple[list[str], set[str]]:
    """Trace ids and services of an ``otlp_json`` record (ids are hex in OTLP JSON)."""
    doc = json.loads(value)
    ids, services = [], set()
    for rs in doc.get("resourceSpans", []):
        services.add(_service(rs.get("resource", {}).get("attributes", [])))
        ids += [s["traceId"] for ss in rs.get("scopeSpans", []) for s in ss.get("spans", [])]
    return ids, services


def decode_proto(value: bytes) -> tuple[list[str], set[str]]:
    """Trace ids and services of an ``otlp_proto`` record (an ExportTraceServiceRequest)."""
    request = ExportTraceServiceRequest.FromString(value)
    ids, services = [], set()
    for rs in request.resource_spans:
        names = [a.value.string_value for a in rs.resource.attributes if a.key == "service.name"]
        services.update(names)
        ids += [s.trace_id.hex() for ss in rs.scope_spans for s in ss.spans]
    return ids, services


async def _consume(bootstrap: str, topic: str, encoding: str, spans: int) -> list[Record]:
    decode = decode_json if encoding == "otlp_json" else decode_proto
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Record] = []
    deadline = time.monotonic() + CONSUME_TIMEOUT
    try:
        while sum(len(r.trace_ids) for r in records) < spans and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for msg in (m for batch in batches.values() for m in batch):
                ids, services = decode(msg.value)
                records.append(Record(msg.key.decode() if msg.key else "", ids, services))
    finally:
        await consumer.stop()
    return records


CASES = [
    pytest.param("otelcol-kafka.yaml", "otlp_proto", "lz4", id="otlp_proto+lz4"),
    pytest.param("otelcol-kafka.yaml", "otlp_proto", "zstd", id="otlp_proto+zstd"),
    pytest.param("otelcol-kafka-json.yaml", "otlp_json", "lz4", id="otlp_json+lz4"),
]


@pytest.mark.parametrize(("config", "encoding", "compression"), CASES)
def test_telemetrygen_spans_reach_kafka_one_trace_per_record(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    tmp_path: Path,
    config: str,
    encoding: str,
    compression: str,
) -> None:
    topic = kafka_topic_factory("otlp-spans", partitions=3)
    env = {
        "SPANSTREAM_KAFKA": kafka_bootstrap,
        "SPANSTREAM_INPUT_TOPIC": topic,
        "SPANSTREAM_COLLECTOR_COMPRESSION": compression,
    }
    with LocalCollector(COLLECTOR_DIR / config, env, log_dir=tmp_path) as collector:
        sent = run_telemetrygen(
            collector.otlp_grpc_endpoint, traces=20, child_spans=3, services=("checkout", "cart")
        )
        records = asyncio.run(_consume(kafka_bootstrap, topic, encoding, sent.spans))

    assert sent.spans == 2 * 20 * 4
    assert sum(len(r.trace_ids) for r in records) == sent.spans
    assert all(TRACE_ID.fullmatch(r.key) for r in records), [r.key for r in records[:5]]
    assert all(set(r.trace_ids) == {r.key} for r in records)
    assert len({r.key for r in records}) == sent.traces
    assert set().union(*(r.services for r in records)) == {"checkout", "cart"}


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.2)


def test_durable_queue_survives_a_collector_crash_while_kafka_is_down(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory("otlp-spans-durable", partitions=3)
    configs = [COLLECTOR_DIR / "otelcol-kafka.yaml", COLLECTOR_DIR / "otelcol-kafka-durable.yaml"]
    env = {"SPANSTREAM_INPUT_TOPIC": topic, "SPANSTREAM_COLLECTOR_QUEUE_DIR": str(tmp_path / "q")}
    # Nothing listens on the first Collector's broker address: its sends fail.
    dead = {**env, "SPANSTREAM_KAFKA": f"127.0.0.1:{free_port()}"}
    first = LocalCollector(configs, dead, log_dir=tmp_path).start()
    try:
        sent = run_telemetrygen(first.otlp_grpc_endpoint, traces=10, child_spans=2)
        # The batch processor holds spans in memory until it flushes them to
        # the exporter's queue; only then are they on disk.
        _wait_for(
            lambda: first.metric("otelcol_processor_batch_batch_send_size_sum") >= sent.spans,
            30.0,
            "the batch processor to flush into the queue",
        )
    finally:
        first.kill()

    live = {**env, "SPANSTREAM_KAFKA": kafka_bootstrap}
    with LocalCollector(configs, live, log_dir=tmp_path):
        records = asyncio.run(_consume(kafka_bootstrap, topic, "otlp_proto", sent.spans))

    assert sum(len(r.trace_ids) for r in records) == sent.spans == 30
    assert len({r.key for r in records}) == sent.traces


VALIDATE_CASES = [
    pytest.param(["otelcol-kafka.yaml"], id="kafka"),
    pytest.param(["otelcol-kafka-json.yaml"], id="kafka-json"),
    pytest.param(["otelcol-kafka.yaml", "otelcol-kafka-durable.yaml"], id="kafka+durable"),
]


def _validate(configs: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [str(collector_binary()), "validate"]
    for name in configs:
        args += ["--config", str(COLLECTOR_DIR / name)]
    return subprocess.run(
        args, capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


@pytest.mark.parametrize("configs", VALIDATE_CASES)
def test_shipped_configs_validate(configs: list[str], tmp_path: Path) -> None:
    done = _validate(configs, {"SPANSTREAM_COLLECTOR_QUEUE_DIR": str(tmp_path / "queue")})
    assert done.returncode == 0, done.stdout + done.stderr


def test_validate_rejects_an_unknown_compression() -> None:
    done = _validate(["otelcol-kafka.yaml"], {"SPANSTREAM_COLLECTOR_COMPRESSION": "brotli"})
    assert done.returncode != 0
    assert "brotli" in done.stdout + done.stderr
