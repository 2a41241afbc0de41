"""A real worker's /metrics carries the spanmetrics of every span it read, before sampling.

Known spans go to Kafka; a ``spanstream worker`` process consumes them; a scrape of its
Prometheus endpoint must give, under the Collector spanmetrics connector's names and
labels, exactly one call per span and each duration in its bucket, whatever the tail
sampler kept. Needs a Kafka broker (the ``kafka_bootstrap`` fixture).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from prometheus_client.parser import text_string_to_metric_families

from pipeline.local.worker import LocalWorker, delete_topics, prepare_topics, unique_names
from pipeline.otlp.samples import proto_request, proto_span

pytestmark = pytest.mark.integration

MS = 1_000_000
TIMEOUT = 120.0
ERROR = Status(code=Status.STATUS_CODE_ERROR)
#: (service, name, kind, status, duration ms) of each span sent, one trace each.
SPANS = [
    ("cart", "GET /cart", ProtoSpan.SPAN_KIND_SERVER, Status(), 1),
    ("cart", "GET /cart", ProtoSpan.SPAN_KIND_SERVER, Status(), 3),
    ("cart", "GET /cart", ProtoSpan.SPAN_KIND_SERVER, ERROR, 450),
    ("cart", "redis GET", ProtoSpan.SPAN_KIND_CLIENT, Status(code=Status.STATUS_CODE_OK), 20_000),
    ("pay", "charge", 42, Status(), 7),  # a kind outside the enum: span_kind=""
]


@pytest.fixture
def worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[LocalWorker]:
    env = {**unique_names("spanmetrics"), "SPANSTREAM_DECISION_WAIT_SECONDS": "1"}
    prepare_topics(kafka_bootstrap, env)
    try:
        with LocalWorker(
            tmp_path / "w", bootstrap=kafka_bootstrap, store_url=f"chdb:{tmp_path / 'chdb'}",
            env=env,
        ) as running:  # fmt: skip
            yield running
    finally:
        delete_topics(kafka_bootstrap, env)


def send(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    now = time.time_ns()
    for i, (service, name, kind, status, ms) in enumerate(SPANS):
        span = proto_span(
            trace_id=(i + 1).to_bytes(16, "big"),
            name=name,
            kind=kind,
            status=status,
            start_time_unix_nano=now - ms * MS,
            end_time_unix_nano=now,
        )
        value = proto_request([span], resource={"service.name": service}).SerializeToString()
        producer.produce(topic, value, key=span.trace_id)
    assert producer.flush(30) == 0


def scrape(worker: LocalWorker) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("traces_span_metrics")
        for s in family.samples
    }


def key(name: str, service: str, span: str, kind: str, status: str, **extra: str) -> tuple:
    labels = {"service_name": service, "span_name": span, "span_kind": kind,
              "status_code": status, **extra}  # fmt: skip
    return (name, tuple(sorted(labels.items())))


def test_a_scrape_gives_every_span_under_the_collectors_names(worker: LocalWorker) -> None:
    send(worker.env["SPANSTREAM_KAFKA"], worker.env["SPANSTREAM_INPUT_TOPIC"])
    calls = "traces_span_metrics_calls_total"
    worker.wait_for(
        lambda: sum(v for (n, _), v in scrape(worker).items() if n == calls) >= len(SPANS),
        TIMEOUT,
        "every span counted",
    )
    got = scrape(worker)
    assert {k: v for k, v in got.items() if k[0] == calls} == {
        key(calls, "cart", "GET /cart", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET"): 2,
        key(calls, "cart", "GET /cart", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR"): 1,
        key(calls, "cart", "redis GET", "SPAN_KIND_CLIENT", "STATUS_CODE_OK"): 1,
        key(calls, "pay", "charge", "", "STATUS_CODE_UNSET"): 1,
    }
    bucket = "traces_span_metrics_duration_milliseconds_bucket"
    server = ("cart", "GET /cart", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET")
    assert got[key(bucket, *server, le="2")] == 1
    assert got[key(bucket, *server, le="4")] == 2
    slow = ("cart", "redis GET", "SPAN_KIND_CLIENT", "STATUS_CODE_OK")
    assert got[key(bucket, *slow, le="15000")] == 0
    assert got[key(bucket, *slow, le="+Inf")] == 1
    total = got[key("traces_span_metrics_duration_milliseconds_sum", *slow)]
    assert total == pytest.approx(20_000, abs=1e-6)
