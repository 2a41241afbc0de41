"""End to end: ``spanstream generate`` -> Kafka -> real ``spanstream worker`` processes -> chdb.

Each test has its own topics and consumer group (so tests sharing a broker never
meet) and its own embedded chdb directory per worker; it reads results the way a
user does, through a worker's /query and Prometheus endpoints and the alert and
DLQ topics. Every wait polls a condition under a deadline.

The generator runs in simulated mode (``--start-time`` in the past): minutes of
stream time are sent in seconds, i.e. the worker consumes a backlog, which must
not turn on-time spans late (``LateSpans`` stays 0).

Needs a Kafka broker (the ``kafka_bootstrap`` fixture).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from confluent_kafka import Producer

from pipeline.generate.manifest import Manifest, read_manifest, summarize
from pipeline.local.kafka import REPO_ROOT
from pipeline.local.worker import LocalWorker, delete_topics, prepare_topics, unique_names
from tests.harness.streams import consume, run_generate

pytestmark = pytest.mark.e2e

NS = 1_000_000_000
#: Short windows, so a few minutes of stream time make many windows of history for the
#: detector (the default ``red`` scores from its third window; not settable through
#: SPANSTREAM_* settings).
# 10 s windows: a window stage stalled longer than one window (the idle rule's horizon)
# on a loaded 2-core CI machine would count on-time spans late.
WINDOW_SECONDS = 10
ALLOWED_LATENESS_SECONDS = 5
#: Seconds for a worker to count, store and close the windows of a small stream.
PROCESS_TIMEOUT = 120.0
ALERT_SCHEMA = REPO_ROOT / "schemas" / "alerts" / "alert.v1.json"


@dataclass
class Stack:
    """One test's names and directories; builds workers wired to them."""

    bootstrap: str
    tmp: Path
    env: dict[str, str]

    @property
    def input_topic(self) -> str:
        return self.env["SPANSTREAM_INPUT_TOPIC"]

    def worker(self, name: str, env: Mapping[str, str] | None = None) -> LocalWorker:
        return LocalWorker(
            self.tmp / name,
            bootstrap=self.bootstrap,
            store_url=f"chdb:{self.tmp / name / 'chdb'}",
            env={**self.env, **(env or {})},
        )

    def generate(self, *args: str) -> Manifest:
        """Send a simulated stream (its clock 30 min in the past); returns its manifest."""
        manifest = self.tmp / f"manifest-{time.monotonic_ns()}.jsonl"
        start = str(int(time.time()) // 60 * 60 - 1800)  # windows align with its seconds
        fixed = ["--start-time", start, "--diurnal-amplitude", "0", "--manifest", str(manifest)]
        run_generate(self.bootstrap, self.input_topic, [*fixed, *args])
        return read_manifest(manifest)


def base_env(**extra: str) -> dict[str, str]:
    return {
        **unique_names(),
        "SPANSTREAM_WINDOW_SECONDS": str(WINDOW_SECONDS),
        "SPANSTREAM_ALLOWED_LATENESS_SECONDS": str(ALLOWED_LATENESS_SECONDS),
        "SPANSTREAM_DECISION_WAIT_SECONDS": "2",
        **extra,
    }


@pytest.fixture
def stack(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(kafka_bootstrap, tmp_path, base_env())
    prepare_topics(kafka_bootstrap, stack.env)
    yield stack
    delete_topics(kafka_bootstrap, stack.env)


# -- reading results ----------------------------------------------------------------------


def windows_by_service(workers: list[LocalWorker]) -> Counter[tuple[int, str, str]]:
    """(window start ns, service, "requests"/"errors"/"late") -> sum over the workers' stores."""
    out: Counter[tuple[int, str, str]] = Counter()
    sql = (
        "SELECT toUnixTimestamp64Milli(WindowStart), ServiceName, sum(Requests), sum(Errors), "
        "sum(LateSpans) FROM spanstream_red_metrics GROUP BY 1, 2"
    )
    for w in workers:
        for start_ms, service, requests, errors, late in w.query(sql):
            start = int(start_ms) * 1_000_000
            out[(start, service, "requests")] += int(requests)
            out[(start, service, "errors")] += int(errors)
            out[(start, service, "late")] += int(late)
    return +out


def reference_windows(manifest: Manifest) -> Counter[tuple[int, str, str]]:
    """The same from the manifest: every sent span in its window (partial.py's bucketing)."""
    out: Counter[tuple[int, str, str]] = Counter()
    spans = manifest.spans()
    for (start, service, _), counts in summarize(spans, WINDOW_SECONDS, lambda s: "").items():
        out[(start, service, "requests")] += counts.count
        out[(start, service, "errors")] += counts.errors
    return +out


def windowed_total(workers: list[LocalWorker]) -> int:
    total = 0
    for w in workers:
        rows = w.query("SELECT sum(Requests) + sum(LateSpans) FROM spanstream_red_metrics")
        total += int(rows[0][0] or 0)
    return total


def stored_ids(worker: LocalWorker) -> list[tuple[str, str]]:
    return [(t, s) for t, s in worker.query("SELECT TraceId, SpanId FROM otel_traces")]


def wait_processed(workers: list[LocalWorker], spans: int, timeout: float) -> None:
    """Until every span is counted in, decided, written, and windowed (closed)."""

    def counted() -> bool:
        s_in = sum(w.metric("spanstream_spans_in_total") for w in workers)
        kept = sum(w.metric("spanstream_spans_kept_total") for w in workers)
        out = sum(w.metric("spanstream_spans_sampled_out_total") for w in workers)
        return s_in == spans and kept + out == spans and windowed_total(workers) == spans

    workers[0].wait_for(counted, timeout, f"{spans} spans processed")


def assert_complete_traces(manifest: Manifest, rows: list[tuple[str, str]]) -> set[str]:
    """Stored rows are unique, sent, and whole traces; returns the stored trace ids."""
    assert len(rows) == len(set(rows)), "a span stored twice"
    per_trace = Counter(t for t, _ in rows)
    for trace_id, n in per_trace.items():
        sent = manifest.traces.get(trace_id)
        assert sent is not None, f"stored trace {trace_id} was never sent"
        assert n == len(sent), f"trace {trace_id}: {n} of {len(sent)} spans stored"
        assert {s for t, s in rows if t == trace_id} == {s.span_id for s in sent}
    return set(per_trace)


# -- 1: counts, windows and the alert -------------------------------------------------------


def test_injected_latency_spike_is_counted_windowed_and_alerted(stack: Stack) -> None:
    began = time.monotonic()
    with stack.worker("w1") as worker:
        # 48 windows of 10 s: 33 normal, then 8 of payment 5x slower, then 7 normal.
        manifest = stack.generate(
            "--rate", "15", "--duration", "480", "--spans-per-trace", "4", "--seed", "11",
            "--anomaly", "latency_spike:service=payment,start=330,duration=80,factor=5",
        )  # fmt: skip
        spans = manifest.summary["spans"]
        assert spans == len(manifest.spans()) > 5000
        wait_processed([worker], spans, PROCESS_TIMEOUT)
        processed = time.monotonic() - began

        s_in = worker.metric("spanstream_spans_in_total")
        kept = worker.metric("spanstream_spans_kept_total")
        dropped = worker.metric("spanstream_spans_sampled_out_total")
        rows = stored_ids(worker)
        assert (s_in, kept + dropped, len(rows)) == (spans, spans, kept)
        assert 0 < dropped < spans
        stored_traces = assert_complete_traces(manifest, rows)

        got = windows_by_service([worker])
        assert sum(v for k, v in got.items() if k[2] == "late") == 0
        assert {k: v for k, v in got.items() if k[2] != "late"} == reference_windows(manifest)

        schema = json.loads(ALERT_SCHEMA.read_text())

        def is_alert(message: Any) -> bool:  # the topic also carries incident records
            return json.loads(message.value()).get("kind") != "incident"

        def payment_alert(messages: list[Any]) -> bool:
            docs = [json.loads(m.value()) for m in messages if is_alert(m)]
            return any(d["service"] == "payment" for d in docs)

        messages = consume(stack.bootstrap, stack.env["SPANSTREAM_ALERT_TOPIC"], payment_alert)
        alerts = [m for m in messages if is_alert(m)]
        docs = [json.loads(m.value()) for m in alerts]
        for doc, msg in zip(docs, alerts, strict=True):
            jsonschema.validate(doc, schema)
            assert msg.key() == doc["service"].encode()
        firing = [d for d in docs if d["service"] == "payment" and d["status"] == "firing"]
        assert firing, docs
        label = manifest.anomalies[0]
        onset = min(firing, key=lambda d: d["window_start"])
        onset_ns = int(datetime.fromisoformat(onset["window_start"]).timestamp()) * NS
        assert label["start_ns"] < onset_ns + WINDOW_SECONDS * NS and onset_ns < label["end_ns"]
        exemplars = {t for d in firing for t in d["exemplar_trace_ids"]}
        assert exemplars and exemplars <= stored_traces
        assert worker.starts == 1 and worker.running
        by_policy: Counter[str] = Counter()
        for labels, n in worker.metric_samples("spanstream_spans_kept_total").items():
            by_policy[labels.split('policy="')[-1].split('"')[0]] += int(n)
        print(
            f"{spans} spans, {len(rows)} stored ({dropped:.0f} sampled out; kept by policy "
            f"{dict(by_policy)}), alerts {dict(Counter(d['service'] for d in docs))}; "
            f"processed {processed:.1f}s after start"
        )


# -- 2: bad records to the DLQ ----------------------------------------------------------------


def bad_records(valid: bytes, json_payload: bytes, max_bytes: int) -> list[dict[str, Any]]:
    """Records the worker must dead-letter, with the reason each must carry."""
    return [
        {"value": b"\x0a\xff\xff\xff\xff\x0fnot otlp at all", "reason": "bad_proto"},
        {"value": valid[: len(valid) // 2], "reason": "bad_proto"},
        {"value": b"\x0a" + b"\x00" * (max_bytes + 10), "reason": "too_large"},
        {"value": b"", "reason": "empty"},
        {"value": None, "reason": "empty"},
        {
            "value": json_payload,
            "headers": [("content-type", b"application/x-protobuf")],
            "reason": "bad_proto",
        },
        {"value": b"{not json", "reason": "bad_json"},
    ]


def sample_payloads() -> tuple[bytes, bytes]:
    """One valid OTLP proto request and one OTLP JSON request, as the generator frames them."""
    from pipeline.generate.messages import Framing, to_messages
    from pipeline.generate.schedule import StreamSpec, generate_traces

    spec = StreamSpec(seed=99, start_ns=time.time_ns() - 3600 * NS, rate=5.0, count=2)
    proto = next(iter(to_messages(generate_traces(spec), Framing())))
    as_json = next(iter(to_messages(generate_traces(spec), Framing(encoding="otlp_json"))))
    return proto.value, as_json.value


def test_bad_records_go_to_the_dlq_with_their_error_and_valid_traffic_is_stored(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    max_bytes = 200_000
    stack = Stack(kafka_bootstrap, tmp_path, base_env(SPANSTREAM_MAX_MESSAGE_BYTES=str(max_bytes)))
    prepare_topics(kafka_bootstrap, stack.env)
    try:
        valid, json_payload = sample_payloads()
        bad = bad_records(valid, json_payload, max_bytes)
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 2_000_000})
        with stack.worker("w1") as worker:
            pid = worker.pid
            for i, record in enumerate(bad[:4]):  # some before the valid traffic ...
                producer.produce(
                    stack.input_topic,
                    record["value"],
                    key=f"bad-{i}".encode(),
                    headers=record.get("headers"),
                )
            producer.flush(30)
            manifest = stack.generate("--rate", "20", "--duration", "30", "--spans-per-trace", "5")
            for i, record in enumerate(bad[4:], start=4):  # ... and some after it
                producer.produce(
                    stack.input_topic,
                    record["value"],
                    key=f"bad-{i}".encode(),
                    headers=record.get("headers"),
                )
            producer.flush(30)
            spans = manifest.summary["spans"]
            wait_processed([worker], spans, PROCESS_TIMEOUT)

            letters = consume(
                kafka_bootstrap, stack.env["SPANSTREAM_DLQ_TOPIC"], lambda m: len(m) >= len(bad)
            )
            assert len(letters) == len(bad)
            by_key = {m.key(): m for m in letters}
            for i, record in enumerate(bad):
                msg = by_key[f"bad-{i}".encode()]
                headers = dict(msg.headers() or [])
                assert headers["spanstream.error.reason"] == record["reason"].encode(), i
                assert headers["spanstream.error.detail"]
                assert headers["spanstream.source.topic"] == stack.input_topic.encode()
                assert int(headers["spanstream.source.offset"]) >= 0
                assert (msg.value() or b"") == (record["value"] or b"")  # unchanged
                for name, value in record.get("headers", []):
                    assert headers[name] == value  # the original headers are kept
            assert worker.metric("spanstream_dlq_records_total") == len(bad)

            rows = stored_ids(worker)
            assert worker.metric("spanstream_spans_kept_total") == len(rows)
            assert_complete_traces(manifest, rows)
            got = windows_by_service([worker])
            assert {k: v for k, v in got.items() if k[2] != "late"} == reference_windows(manifest)
            assert (worker.starts, worker.pid, worker.running) == (1, pid, True)
            assert "Crashed" not in worker.log_file.read_text(errors="replace")
    finally:
        delete_topics(kafka_bootstrap, stack.env)


# -- 3: two workers, one group ----------------------------------------------------------------


def owned(worker: LocalWorker) -> tuple[set[int], set[int]]:
    """Input partitions (ingest) and partials partitions (window stage) the worker holds now."""
    text = worker.log_file.read_text(errors="replace")
    ingest: set[int] = set()
    for line in text.splitlines():
        if "assigned partition " in line:
            ingest.add(int(line.split("assigned partition ")[1].split()[0]))
        if "partitions revoked: [" in line:
            gone = line.split("partitions revoked: [")[1].split("]")[0]
            ingest -= {int(p) for p in gone.split(",") if p.strip()}
    windows = set()
    for line in text.splitlines():
        if "window stage owns partials partitions [" in line:
            part = line.split("partials partitions [")[1].split("]")[0]
            windows = {int(p) for p in part.split(",") if p.strip()}
    return ingest, windows


def test_two_workers_in_one_group_store_what_one_worker_stores(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    keep_all = {"SPANSTREAM_BASELINE_RATE": "1.0"}  # sampling aside: every trace is kept
    pair = Stack(kafka_bootstrap, tmp_path / "pair", base_env(**keep_all))
    single = Stack(kafka_bootstrap, tmp_path / "single", base_env(**keep_all))
    single.env["SPANSTREAM_INPUT_TOPIC"] = pair.input_topic  # the same stream, another group
    prepare_topics(kafka_bootstrap, pair.env)
    prepare_topics(kafka_bootstrap, single.env)
    a, b, one = pair.worker("a"), pair.worker("b"), single.worker("one")
    try:
        for w in (a, b, one):
            w.start()

        def split() -> bool:
            (ia, wa), (ib, wb) = owned(a), owned(b)
            return (
                ia | ib == wa | wb == set(range(6))
                and not ia & ib
                and not wa & wb
                and all((ia, ib, wa, wb))
            )

        a.wait_for(split, PROCESS_TIMEOUT, "both workers own input and partials partitions")
        manifest = pair.generate(
            "--rate", "10", "--duration", "120", "--spans-per-trace", "6", "--seed", "5"
        )  # fmt: skip
        spans = manifest.summary["spans"]
        wait_processed([a, b], spans, PROCESS_TIMEOUT)
        wait_processed([one], spans, PROCESS_TIMEOUT)

        rows_a, rows_b, rows_one = stored_ids(a), stored_ids(b), stored_ids(one)
        assert rows_a and rows_b, "both workers stored spans"
        assert not set(rows_a) & set(rows_b), "a span stored by both workers"
        assert len(rows_a) + len(rows_b) == len(set(rows_a) | set(rows_b)) == spans
        assert set(rows_a) | set(rows_b) == set(rows_one)
        assert len(rows_one) == len(set(rows_one)) == spans
        assert_complete_traces(manifest, rows_a + rows_b)

        pair_windows, one_windows = windows_by_service([a, b]), windows_by_service([one])
        assert pair_windows == one_windows == reference_windows(manifest)
        dup = (
            "SELECT count() - uniqExact(ServiceName, SpanName, WindowStart) "
            "FROM spanstream_red_metrics"
        )
        assert [w.query(dup)[0][0] for w in (a, b, one)] == [0, 0, 0]
        keys = "SELECT ServiceName, SpanName, toUnixTimestamp64Milli(WindowStart) FROM "
        keys += "spanstream_red_metrics"
        ka = {tuple(r) for r in a.query(keys)}
        kb = {tuple(r) for r in b.query(keys)}
        assert not ka & kb, "a window written by both workers"
        assert all(w.starts == 1 and w.running for w in (a, b, one))
    finally:
        for w in (a, b, one):
            w.stop()
        delete_topics(kafka_bootstrap, pair.env)
        delete_topics(kafka_bootstrap, single.env)
