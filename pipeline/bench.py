"""Throughput benchmark: the full pipeline vs a bare aiokafka consumer, on the same topic and data.

One run: fill one uniquely named input topic once with ``messages`` synthetic
OTLP messages (by default one trace of ~20 spans per message, ~10 attributes
per span, keyed by trace id as the Collector's kafka exporter writes with
``partition_traces_by_id``), then measure, one after the other on that data:

ceiling
    a bare ``aiokafka`` consumer (its own group) that reads every record and
    parses it with ``ExportTraceServiceRequest.FromString`` (the upb backend),
    counting the spans. Nothing else: no span objects, no enrichment.
pipeline
    one real ``spanstream worker`` process (its own group, a fresh embedded
    chdb store) from offset 0 until its ``spanstream_messages_in_total`` and
    ``spanstream_spans_in_total`` counters reach what was produced *and* the
    group's committed offsets equal the end offsets (every span decided, the
    kept ones stored, partials delivered). Its resident memory is sampled from
    ``/proc`` all along; ``VmHWM`` (the kernel's high-water mark) is read too.

Both rates run from the start of consumption to the last message consumed,
so connection set-up, group joins and the worker's start are left out: the
ceiling counts every message from the moment its first fetch returned (before
decoding it); the pipeline counts from its first counter sample (every
:data:`SAMPLE_INTERVAL_S`) showing progress, the messages before it excluded.
Each also gets the CPU time its process used meanwhile (all threads), so
spans per CPU-second can be compared on a machine that is busy with other
work. The pipeline's *drain* (the last message consumed until every offset is
committed) is reported on its own: it is dominated by the tail-sampling
decision wait (``SPANSTREAM_DECISION_WAIT_SECONDS``), a latency, not a
throughput limit.

:func:`run_bench` does the I/O; the small pure helpers around it
(:func:`parse_metrics`, :func:`steady_rate`, :func:`format_report`) are what
the unit tests check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import SpanstreamError

log = logging.getLogger("spanstream.bench")

#: The issue's target: the full pipeline at >= 30% of the raw ceiling.
TARGET_RATIO = 0.30
#: Stream time of the synthetic data: traces/s of the simulated stream, ending at fill time,
#: so windows are open and spans are on time as in live traffic.
STREAM_RATE = 1000.0
#: Seconds between samples of the worker's counters and memory.
SAMPLE_INTERVAL_S = 0.2
#: Messages kept from the ceiling run for the in-process (no Kafka) decode reference.
IN_PROCESS_SAMPLE = 2000
#: The decoder of the ceiling, as printed.
CEILING_DECODER = "ExportTraceServiceRequest.FromString"
#: Counters and gauges read from the worker's /metrics.
METRIC_NAMES = (
    "spanstream_messages_in_total",
    "spanstream_spans_in_total",
    "spanstream_spans_kept_total",
    "spanstream_unacked_messages",
    "spanstream_decode_errors_total",
)


class BenchFailed(SpanstreamError):
    """A phase of the benchmark did not complete (timeout, worker died, counts differ)."""


# --- options and names -------------------------------------------------------------------


@dataclass(frozen=True)
class BenchOptions:
    """What to measure; the CLI validates these (see :mod:`pipeline.commands.bench`)."""

    messages: int = 20_000
    spans_per_trace: int = 20
    batch_traces: int = 0
    seed: int = 1
    timeout_s: float = 600.0
    progress_s: float = 5.0
    keep_data: bool = False

    @property
    def traces(self) -> int:
        """Traces to generate: ``batch_traces`` per message when batching, else one."""
        return self.messages * max(1, self.batch_traces)


@dataclass(frozen=True)
class BenchNames:
    """Uniquely named topics and groups of one run, all starting with ``prefix``.

    >>> names = BenchNames.for_run("abc123")
    >>> names.input, names.group, names.ceiling_group
    ('spanstream-bench-abc123', 'spanstream-bench-abc123', 'spanstream-bench-abc123-ceiling')
    >>> names.env()["SPANSTREAM_PARTIALS_TOPIC"]
    'spanstream-bench-abc123-partials'
    """

    prefix: str
    input: str
    dlq: str
    alerts: str
    partials: str
    group: str
    ceiling_group: str

    @classmethod
    def for_run(cls, run_id: str | None = None) -> BenchNames:
        prefix = f"spanstream-bench-{run_id or uuid.uuid4().hex[:8]}"
        return cls(
            prefix=prefix,
            input=prefix,
            dlq=f"{prefix}-dlq",
            alerts=f"{prefix}-alerts",
            partials=f"{prefix}-partials",
            group=prefix,
            ceiling_group=f"{prefix}-ceiling",
        )

    def env(self) -> dict[str, str]:
        """The worker's ``SPANSTREAM_*`` topic and group settings."""
        return {
            "SPANSTREAM_INPUT_TOPIC": self.input,
            "SPANSTREAM_DLQ_TOPIC": self.dlq,
            "SPANSTREAM_ALERT_TOPIC": self.alerts,
            "SPANSTREAM_PARTIALS_TOPIC": self.partials,
            "SPANSTREAM_GROUP": self.group,
        }


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """``messages`` and ``spans`` processed in ``seconds`` of wall time, using ``cpu_seconds``
    of the consuming process's CPU time (all its threads; 0 when not measured).

    >>> m = Measurement(messages=1000, spans=20000, seconds=0.5, cpu_seconds=0.4)
    >>> m.messages_per_s, m.spans_per_s, m.spans_per_cpu_s
    (2000.0, 40000.0, 50000.0)
    """

    messages: int
    spans: int
    seconds: float
    cpu_seconds: float = 0.0

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def spans_per_s(self) -> float:
        return self.spans / self.seconds if self.seconds > 0 else 0.0

    @property
    def spans_per_cpu_s(self) -> float:
        """Spans per CPU-second: less sensitive than spans/s to other load on the machine."""
        return self.spans / self.cpu_seconds if self.cpu_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "messages": self.messages,
            "spans": self.spans,
            "seconds": round(self.seconds, 4),
            "messages_per_s": round(self.messages_per_s, 1),
            "spans_per_s": round(self.spans_per_s, 1),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "spans_per_cpu_s": round(self.spans_per_cpu_s, 1),
        }


@dataclass(frozen=True)
class Filled:
    """What the fill produced: totals and each partition's end offset."""

    messages: int
    spans: int
    bytes: int
    end_offsets: Mapping[int, int]
    seconds: float

    @property
    def spans_per_message(self) -> float:
        return self.spans / self.messages if self.messages else 0.0

    @property
    def bytes_per_message(self) -> float:
        return self.bytes / self.messages if self.messages else 0.0


@dataclass(frozen=True)
class PipelineRun:
    """The worker's figures: its rate, drain, what it stored and its memory."""

    rate: Measurement
    messages_in: int
    spans_in: int
    drain_seconds: float
    stored_spans: int
    kept_spans: int
    decode_errors: int
    rss_start_bytes: int
    rss_sampled_peak_bytes: int
    rss_hwm_bytes: int
    peak_unacked_messages: int
    samples: int

    @property
    def rss_peak_bytes(self) -> int:
        """The higher of the sampled peak and ``VmHWM`` (the kernel updates it lazily)."""
        return max(self.rss_sampled_peak_bytes, self.rss_hwm_bytes)


@dataclass(frozen=True)
class BenchResult:
    """Everything one run measured."""

    options: BenchOptions
    broker: str
    partitions: int
    filled: Filled
    ceiling: Measurement
    pipeline: PipelineRun
    in_process: Mapping[str, float] = field(default_factory=dict)
    protobuf_backend: str = ""
    #: CPUs and 1-minute load averages (before the ceiling, before the pipeline, at the end):
    #: other load on the machine skews spans/s; spans per CPU-second much less.
    machine: Mapping[str, float] = field(default_factory=dict)
    #: The worker's tail-sampling decision wait (SPANSTREAM_DECISION_WAIT_SECONDS).
    decision_wait_s: float = 0.0
    #: The run's name: the prefix of its topics and groups.
    run: str = ""

    @property
    def ratio(self) -> float:
        """Pipeline spans/s over ceiling spans/s (the same as the messages/s ratio)."""
        c = self.ceiling.spans_per_s
        return self.pipeline.rate.spans_per_s / c if c > 0 else 0.0

    @property
    def cpu_ratio(self) -> float:
        """Pipeline over ceiling in spans per CPU-second of the consuming process."""
        c = self.ceiling.spans_per_cpu_s
        return self.pipeline.rate.spans_per_cpu_s / c if c > 0 else 0.0

    @property
    def target_met(self) -> bool:
        return self.ratio >= TARGET_RATIO

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``spanstream bench --json``."""
        p = self.pipeline
        return {
            "run": self.run,
            "options": asdict(self.options),
            "broker": self.broker,
            "partitions": self.partitions,
            "protobuf_backend": self.protobuf_backend,
            "message": {
                "messages": self.filled.messages,
                "spans": self.filled.spans,
                "bytes": self.filled.bytes,
                "spans_per_message": round(self.filled.spans_per_message, 2),
                "bytes_per_message": round(self.filled.bytes_per_message, 1),
                "traces_per_message": max(1, self.options.batch_traces),
                "fill_seconds": round(self.filled.seconds, 2),
            },
            "ceiling": {"decoder": CEILING_DECODER, **self.ceiling.to_dict()},
            "pipeline": {
                **p.rate.to_dict(),
                "workers": 1,
                "messages_in": p.messages_in,
                "spans_in": p.spans_in,
                "drain_seconds": round(p.drain_seconds, 2),
                "stored_spans": p.stored_spans,
                "kept_spans": p.kept_spans,
                "decode_errors": p.decode_errors,
                "rss_start_bytes": p.rss_start_bytes,
                "rss_peak_bytes": p.rss_peak_bytes,
                "rss_sampled_peak_bytes": p.rss_sampled_peak_bytes,
                "rss_hwm_bytes": p.rss_hwm_bytes,
                "peak_unacked_messages": p.peak_unacked_messages,
                "samples": p.samples,
            },
            "in_process": dict(self.in_process),
            "machine": dict(self.machine),
            "decision_wait_seconds": self.decision_wait_s,
            "ratio": self.ratio,
            "cpu_ratio": self.cpu_ratio,
            "target_ratio": TARGET_RATIO,
            "target_met": self.target_met,
        }


# --- pure helpers ------------------------------------------------------------------------


def parse_metrics(text: str, names: Sequence[str] = METRIC_NAMES) -> dict[str, float]:
    """Sum each named metric over its labels in a Prometheus text page (0 when absent).

    >>> page = 'a_total{x="1"} 2.0\\na_total{x="2"} 3.0\\nab_total 7.0\\n# HELP a_total t\\n'
    >>> parse_metrics(page, ["a_total", "b"])
    {'a_total': 5.0, 'b': 0.0}
    """
    totals = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


@dataclass(frozen=True)
class Sample:
    """One observation of the worker: monotonic time, its counters, RSS and CPU time so far."""

    t: float
    messages: int
    spans: int
    rss_bytes: int
    unacked_messages: int = 0
    cpu_s: float = 0.0


def steady_rate(samples: Sequence[Sample], total_messages: int) -> Measurement:
    """Rate from the first sample showing progress to the first showing ``total_messages``.

    What was processed before the first non-zero sample is left out of both
    the counts and the time (the worker's start and group join). When one
    sample already shows the total, the rate starts at the sample before it.

    >>> s = [Sample(0.0, 0, 0, 0), Sample(1.0, 100, 2000, 0), Sample(3.0, 500, 10000, 0)]
    >>> steady_rate(s, 500)
    Measurement(messages=400, spans=8000, seconds=2.0, cpu_seconds=0.0)
    >>> steady_rate([s[0], s[2]], 500)
    Measurement(messages=500, spans=10000, seconds=3.0, cpu_seconds=0.0)
    >>> steady_rate(s[:2], 500)
    Traceback (most recent call last):
    ...
    pipeline.bench.BenchFailed: the worker never reached 500 messages (last sample: 100)
    """
    first = next((s for s in samples if s.messages > 0), None)
    last = next((s for s in samples if s.messages >= total_messages), None)
    if first is None or last is None:
        seen = samples[-1].messages if samples else 0
        raise BenchFailed(
            f"the worker never reached {total_messages} messages (last sample: {seen})"
        )
    if last is first:
        # Everything went by between two samples (a tiny run): start at the one before.
        index = samples.index(first)
        if index == 0:
            raise BenchFailed("the worker consumed everything before the first sample")
        first = samples[index - 1]
    return Measurement(
        last.messages - first.messages,
        last.spans - first.spans,
        last.t - first.t,
        last.cpu_s - first.cpu_s,
    )


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def format_report(r: BenchResult) -> str:
    """The human-readable table ``spanstream bench`` prints."""
    f, c, p = r.filled, r.ceiling, r.pipeline
    o = r.options
    per = f"{max(1, o.batch_traces)} trace(s)/message" + (", no key" if o.batch_traces else "")
    lines = [
        f"spanstream bench: {f.messages:,} messages, {f.spans:,} spans on {r.partitions} "
        f"partitions ({r.broker}; protobuf backend {r.protobuf_backend})",
        f"message size: {f.spans_per_message:.1f} spans/msg, {f.bytes_per_message:,.0f} bytes/msg "
        f"avg (otlp_proto, {per}, mean {o.spans_per_trace} spans/trace, ~10 attributes/span)",
        "",
        f"{'':34} {'msgs/s':>10} {'spans/s':>12} {'seconds':>8} {'spans/CPU-s':>12}",
        f"{'ceiling: aiokafka + FromString':34} {c.messages_per_s:>10,.0f} "
        f"{c.spans_per_s:>12,.0f} {c.seconds:>8.2f} {c.spans_per_cpu_s:>12,.0f}",
        f"{'pipeline: 1 worker process':34} {p.rate.messages_per_s:>10,.0f} "
        f"{p.rate.spans_per_s:>12,.0f} {p.rate.seconds:>8.2f} {p.rate.spans_per_cpu_s:>12,.0f}",
        f"{'ratio pipeline / ceiling':34} {r.ratio:>10.3f} {'':21} {r.cpu_ratio:>12.3f}",
        f"target: pipeline >= {TARGET_RATIO:.2f} x ceiling (spans/s): "
        f"{'met' if r.target_met else 'NOT met'}",
        "",
        f"pipeline drain: every offset committed {p.drain_seconds:.1f}s after the last message "
        f"was consumed (tail-sampling decision wait)",
        f"pipeline counted {p.messages_in:,} messages, {p.spans_in:,} spans in; stored "
        f"{p.stored_spans:,} spans ({p.stored_spans / max(1, p.spans_in):.1%}, tail-sampled); "
        f"decode errors {p.decode_errors}",
        f"worker memory: peak RSS {_mb(p.rss_peak_bytes)} (VmHWM {_mb(p.rss_hwm_bytes)}, "
        f"sampled every {SAMPLE_INTERVAL_S}s: {_mb(p.rss_sampled_peak_bytes)} in {p.samples} "
        f"samples), at start {_mb(p.rss_start_bytes)};"
        f" peak unacked messages {p.peak_unacked_messages:,}",
    ]
    wait = r.decision_wait_s
    if p.rate.seconds < 2 * wait:
        lines.append(
            f"WARNING: the pipeline was measured over {p.rate.seconds:.1f}s, less than twice the "
            f"decision wait ({wait:g}s): its decide-and-write work mostly fell into the drain, "
            "so spans/s is optimistic; use more --messages"
        )
    if r.in_process:
        ip = r.in_process
        lines.append(
            f"in-process reference, no Kafka ({int(ip['messages'])} of the same messages): "
            f"FromString {ip['from_string_spans_per_s']:,.0f} spans/s, "
            f"decode_message (decode+enrich) {ip['decode_message_spans_per_s']:,.0f} spans/s"
        )
    if r.machine:
        m = r.machine
        lines.append(
            f"machine: {int(m['cpus'])} CPUs, 1-min load average {m['load_before_ceiling']:.2f} "
            f"before the ceiling, {m['load_before_pipeline']:.2f} before the pipeline, "
            f"{m['load_after']:.2f} after"
        )
    return "\n".join(lines)


# --- phases (I/O) ------------------------------------------------------------------------


class _Progress:
    """Logs ``message()`` at most every ``every_s`` seconds."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._next = time.monotonic() + every_s

    def maybe(self, message: str) -> None:
        now = time.monotonic()
        if now >= self._next:
            log.info("%s", message)
            self._next = now + self.every_s


#: The window stage's Faust tables, whose changelog topics are created up front.
FAUST_TABLES = ("windows", "detectors")


def create_topics(bootstrap: str, names: BenchNames) -> int:
    """Create the run's topics from ``topics/topics.yaml``; returns input partitions.

    The window stage's changelog topics are created too, as a deployed worker
    finds them: when the worker creates them itself at start, its producer's
    metadata can lack their partitions for minutes and table writes fail.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    from pipeline.settings import load_settings
    from pipeline.topics import DEFAULT_TOPICS_FILE, TopicAdmin, apply, load_declarations

    settings = load_settings(
        kafka_bootstrap=bootstrap,
        input_topic=names.input,
        dlq_topic=names.dlq,
        alert_topic=names.alerts,
        partials_topic=names.partials,
        group=names.group,
    )
    decls = load_declarations(DEFAULT_TOPICS_FILE, settings)
    result = apply(TopicAdmin(bootstrap), decls)
    pending = [i.decl.name for i in result.final if i.action == "create"]
    if pending:
        raise BenchFailed(f"topics not created: {pending}")
    n = settings.partials_partitions
    changelogs = [
        NewTopic(f"{names.group}-windows-{t}-changelog", n, 1, config={"cleanup.policy": "compact"})
        for t in FAUST_TABLES
    ]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(changelogs, operation_timeout=15).values():
        future.result(15)
    deadline = time.monotonic() + 30
    while not all(
        len(getattr(admin.list_topics(timeout=10).topics.get(t.topic), "partitions", {})) == n
        for t in changelogs
    ):
        if time.monotonic() > deadline:
            raise BenchFailed("the window stage's changelog topics did not appear in metadata")
        time.sleep(0.1)
    return next(d.partitions for d in decls if d.name == names.input)


def delete_run(bootstrap: str, names: BenchNames) -> list[str]:
    """Delete the run's topics (its own and Faust's, all named ``prefix*``) and groups."""
    from confluent_kafka.admin import AdminClient

    # log_level 2: a broker that went away fails the call once instead of logging each retry.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(names.prefix)]
    groups = [names.group, names.ceiling_group, f"{names.group}-windows"]
    futures = list(admin.delete_consumer_groups(groups, request_timeout=15).values())
    if topics:
        futures += admin.delete_topics(topics, operation_timeout=15).values()
    for future in futures:
        with contextlib.suppress(Exception):  # best effort: a group may never have existed
            future.result(15)
    return topics


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """High watermark of each partition of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-watermarks"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        out = {}
        for p in sorted(meta.partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            out[p] = int(high)
        return out
    finally:
        consumer.close()


def fill(bootstrap: str, topic: str, options: BenchOptions) -> Filled:
    """Produce ``options.messages`` synthetic messages with the generator (simulated mode)."""
    from pipeline.generate.messages import Framing
    from pipeline.generate.produce import KafkaSink
    from pipeline.generate.runner import RunOptions, run_generator
    from pipeline.generate.schedule import StreamSpec

    traces = options.traces
    spec = StreamSpec(
        seed=options.seed,
        start_ns=time.time_ns() - int(traces / STREAM_RATE * 1e9),
        rate=STREAM_RATE,
        count=traces,
        mean_spans=options.spans_per_trace,
        amplitude=0.0,
    )
    framing = Framing("otlp_proto", batch_traces=options.batch_traces, seed=options.seed)
    sink = KafkaSink(bootstrap, topic)
    sink.check_ready()
    log.info("filling %s with %d messages (%d traces)", topic, options.messages, traces)
    stats = run_generator(spec, framing, sink, None, RunOptions(progress_s=options.progress_s))
    log.info("filled: %s", stats.rates())
    if stats.messages != options.messages:
        raise BenchFailed(f"produced {stats.messages} messages, expected {options.messages}")
    offsets = end_offsets(bootstrap, topic)
    if sum(offsets.values()) != stats.messages:
        raise BenchFailed(
            f"{topic} holds {sum(offsets.values())} records, {stats.messages} were produced: "
            "the topic must be new and empty"
        )
    return Filled(stats.messages, stats.spans, stats.bytes, offsets, stats.elapsed_s)


def _count_spans(request: Any) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


async def _ceiling(
    bootstrap: str, topic: str, group: str, total: int, options: BenchOptions, keep: list[bytes]
) -> Measurement:
    from aiokafka import AIOKafkaConsumer
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    parse = ExportTraceServiceRequest.FromString
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    messages = spans = 0
    t0: float | None = None
    cpu0 = 0.0
    progress = _Progress(options.progress_s)
    deadline = time.monotonic() + options.timeout_s
    try:
        while messages < total:
            if time.monotonic() > deadline:
                raise BenchFailed(f"ceiling: {messages} of {total} messages in the timeout")
            batches = await consumer.getmany(timeout_ms=500)
            if t0 is None and batches:
                # From the first records fetched, before decoding them.
                t0, cpu0 = time.perf_counter(), time.process_time()
            for records in batches.values():
                for record in records:
                    spans += _count_spans(parse(record.value))
                    if len(keep) < IN_PROCESS_SAMPLE:
                        keep.append(record.value)
                messages += len(records)
            progress.maybe(f"ceiling: {messages:,}/{total:,} messages")
        t1, cpu1 = time.perf_counter(), time.process_time()
    finally:
        await consumer.stop()
    assert t0 is not None
    if messages != total:
        raise BenchFailed(f"ceiling read {messages} messages, {total} were produced")
    log.info("ceiling: %d messages, %d spans", messages, spans)
    return Measurement(messages, spans, t1 - t0, cpu1 - cpu0)


def measure_ceiling(
    bootstrap: str, topic: str, group: str, filled: Filled, options: BenchOptions
) -> tuple[Measurement, list[bytes]]:
    """The bare consumer's rate, and the first messages it read (for the in-process figures)."""
    keep: list[bytes] = []
    # aiokafka logs every group step at INFO; only its warnings matter here.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    rate = asyncio.run(_ceiling(bootstrap, topic, group, filled.messages, options, keep))
    return rate, keep


def in_process_rates(values: Sequence[bytes], passes: int = 3) -> dict[str, float]:
    """spans/s of FromString and of the pipeline's decode_message on ``values``, no Kafka."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from pipeline.enrich import Enricher
    from pipeline.otlp.decode import decode_message

    parse = ExportTraceServiceRequest.FromString
    enricher = Enricher()
    spans = sum(_count_spans(parse(v)) for v in values)

    def best(fn: Callable[[bytes], object]) -> float:
        times = []
        for _ in range(passes):
            start = time.perf_counter()
            for v in values:
                fn(v)
            times.append(time.perf_counter() - start)
        return spans / min(times) if values else 0.0

    return {
        "messages": float(len(values)),
        "from_string_spans_per_s": round(best(parse), 1),
        "decode_message_spans_per_s": round(
            best(lambda v: decode_message(v, None, max_bytes=1 << 24, enricher=enricher)), 1
        ),
    }


def _read_status(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all threads) from ``/proc/<pid>/stat``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _scrape(port: int) -> dict[str, float] | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return parse_metrics(response.read().decode())
    except OSError:
        return None


class _Committed:
    """The group's committed offsets of the input topic, via confluent-kafka."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: Sequence[int]) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self._tps = [TopicPartition(topic, p) for p in partitions]

    def offsets(self) -> dict[int, int]:
        return {tp.partition: tp.offset for tp in self._consumer.committed(self._tps, timeout=10)}

    def close(self) -> None:
        self._consumer.close()


def measure_pipeline(
    bootstrap: str, names: BenchNames, filled: Filled, workdir: Path, options: BenchOptions
) -> PipelineRun:
    """Run one worker over the filled topic; see the module docstring for what is measured."""
    from pipeline.testing.worker import LocalWorker

    worker = LocalWorker(
        workdir / "worker",
        bootstrap=bootstrap,
        store_url=f"chdb:{workdir / 'chdb'}",
        env=names.env(),
    )
    started: list[BaseException | None] = []

    def start() -> None:
        try:
            worker.start(ready_timeout=min(options.timeout_s, 120.0))
            started.append(None)
        except BaseException as exc:
            started.append(exc)

    starter = threading.Thread(target=start, name="bench-worker-start", daemon=True)
    log.info("starting a worker (log: %s)", worker.log_file)
    starter.start()
    try:
        return _watch(worker, starter, started, bootstrap, names, filled, options)
    finally:
        starter.join(30)
        code = worker.stop()
        if code not in (0, -15):
            log.warning("worker exited with %s; log: %s", code, worker.log_file)


def _watch(
    worker: Any,
    starter: threading.Thread,
    started: list[BaseException | None],
    bootstrap: str,
    names: BenchNames,
    filled: Filled,
    options: BenchOptions,
) -> PipelineRun:
    total, spans_total = filled.messages, filled.spans
    samples: list[Sample] = []
    deadline = time.monotonic() + options.timeout_s
    progress = _Progress(options.progress_s)
    last: dict[str, float] = {}
    rss_start = 0
    consumed_at: float | None = None
    committed = _Committed(bootstrap, names.group, names.input, sorted(filled.end_offsets))
    drain_done: float | None = None
    next_commit_check = 0.0
    next_tick = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                raise BenchFailed(
                    f"pipeline: not done after {options.timeout_s:.0f}s (last counters {last}); "
                    f"worker log: {worker.log_file}"
                )
            if started and started[0] is not None:
                raise BenchFailed(f"worker did not start: {started[0]}")
            if worker.pid is not None and not worker.running:
                last_line = (worker.log_tail(1) or "no output").strip()
                raise BenchFailed(f"worker died: {last_line} (log: {worker.log_file})")
            pid = worker.pid
            values = _scrape(worker.metrics_port) if pid is not None else None
            if values is not None and pid is not None:
                last = values
                rss = _read_status(pid, "VmRSS")
                rss_start = rss_start or rss
                sample = Sample(
                    time.monotonic(),
                    int(values["spanstream_messages_in_total"]),
                    int(values["spanstream_spans_in_total"]),
                    rss,
                    int(values["spanstream_unacked_messages"]),
                    _cpu_seconds(pid),
                )
                samples.append(sample)
                if consumed_at is None and sample.messages >= total:
                    consumed_at = sample.t
                    log.info("pipeline: all %d messages consumed; waiting for commits", total)
                progress.maybe(
                    f"pipeline: {sample.messages:,}/{total:,} messages, "
                    f"{sample.spans:,} spans, RSS {_mb(sample.rss_bytes)}"
                )
            if consumed_at is not None and now >= next_commit_check:
                next_commit_check = now + 0.25
                if committed.offsets() == dict(filled.end_offsets):
                    drain_done = time.monotonic()
                    break
            next_tick = max(next_tick + SAMPLE_INTERVAL_S, time.monotonic())
            time.sleep(max(0.0, next_tick - time.monotonic()))
    finally:
        committed.close()
    assert consumed_at is not None and drain_done is not None and worker.pid is not None
    hwm = _read_status(worker.pid, "VmHWM")
    final = _scrape(worker.metrics_port) or last
    messages_in = int(final["spanstream_messages_in_total"])
    spans_in = int(final["spanstream_spans_in_total"])
    if messages_in != total or spans_in != spans_total:
        raise BenchFailed(
            f"worker counted {messages_in} messages / {spans_in} spans in, "
            f"{total} / {spans_total} were produced"
        )
    stored = worker.count("otel_traces")
    rate = steady_rate(samples, total)
    log.info("pipeline: %d spans stored", stored)
    return PipelineRun(
        rate=rate,
        messages_in=messages_in,
        spans_in=spans_in,
        drain_seconds=drain_done - consumed_at,
        stored_spans=stored,
        kept_spans=int(final["spanstream_spans_kept_total"]),
        decode_errors=int(final["spanstream_decode_errors_total"]),
        rss_start_bytes=rss_start,
        rss_sampled_peak_bytes=max(s.rss_bytes for s in samples),
        rss_hwm_bytes=hwm,
        peak_unacked_messages=max(s.unacked_messages for s in samples),
        samples=len(samples),
    )


def _clean_up(bootstrap: str, names: BenchNames) -> None:
    try:
        deleted = delete_run(bootstrap, names)
    except Exception as exc:  # never hide the run's own result or error
        log.warning("could not delete the run's topics %s*: %s", names.prefix, exc)
    else:
        log.info("deleted topics %s and the run's groups", deleted)


@contextlib.contextmanager
def _broker(bootstrap: str | None, workdir: Path) -> Iterator[tuple[str, str]]:
    """``bootstrap`` as given, else a LocalKafka started in ``workdir``; yields (addr, label)."""
    if bootstrap:
        yield bootstrap, f"Kafka at {bootstrap}"
        return
    from pipeline.testing.kafka_broker import LocalKafka

    kafka = LocalKafka(workdir / "kafka")
    log.info("no --bootstrap/SPANSTREAM_KAFKA: starting a local broker in %s", kafka.data_dir)
    kafka.start()
    try:
        yield kafka.bootstrap, f"local broker {kafka.bootstrap}"
    finally:
        kafka.stop()


def run_bench(options: BenchOptions, bootstrap: str | None = None) -> BenchResult:
    """Fill a new topic, measure the ceiling, then the pipeline; clean up unless ``keep_data``."""
    from pipeline.otlp.decode import PROTOBUF_BACKEND
    from pipeline.settings import load_settings

    workdir = Path(tempfile.mkdtemp(prefix="spanstream-bench-"))
    names = BenchNames.for_run()
    log.info("run %s in %s", names.prefix, workdir)
    failed = True
    try:
        with _broker(bootstrap, workdir) as (address, label):
            # A broker that does not answer here has nothing of this run to clean up.
            partitions = create_topics(address, names)
            try:
                filled = fill(address, names.input, options)
                log.info("ceiling: bare aiokafka consumer + %s", CEILING_DECODER)
                load = [os.getloadavg()[0]]
                ceiling, sample = measure_ceiling(
                    address, names.input, names.ceiling_group, filled, options
                )
                in_process = in_process_rates(sample)
                load.append(os.getloadavg()[0])
                pipeline = measure_pipeline(address, names, filled, workdir, options)
                load.append(os.getloadavg()[0])
                failed = False
            finally:
                if not options.keep_data and bootstrap:
                    _clean_up(address, names)
    finally:
        if options.keep_data or (failed and any(workdir.iterdir())):
            # A failed run keeps its directory: the worker's and the broker's logs are there.
            log.info("kept data in %s (topics %s*)", workdir, names.prefix)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return BenchResult(
        options=options,
        broker=label,
        partitions=partitions,
        filled=filled,
        ceiling=ceiling,
        pipeline=pipeline,
        in_process=in_process,
        protobuf_backend=PROTOBUF_BACKEND,
        machine={
            "cpus": float(os.cpu_count() or 0),
            "load_before_ceiling": load[0],
            "load_before_pipeline": load[1],
            "load_after": load[2],
        },
        decision_wait_s=load_settings().decision_wait_seconds,
        run=names.prefix,
    )


def default_bootstrap(environ: Mapping[str, str] | None = None) -> str | None:
    """``SPANSTREAM_KAFKA`` when set (an existing broker), else None (start a local one).

    >>> default_bootstrap({}), default_bootstrap({"SPANSTREAM_KAFKA": "k:9092"})
    (None, 'k:9092')
    """
    env = os.environ if environ is None else environ
    return env.get("SPANSTREAM_KAFKA") or None
