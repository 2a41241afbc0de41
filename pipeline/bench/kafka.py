"""The Kafka side: the run's topics, the fill, the bare aiokafka ceiling, in-process rates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from pipeline.bench.options import BenchFailed, BenchNames, BenchOptions, Progress, log
from pipeline.bench.report import Filled, Measurement
from pipeline.kafka_client import KafkaSecurity, aiokafka_kwargs, librdkafka_config

#: Stream time of the synthetic data: traces/s of the simulated stream, ending at fill time,
#: so windows are open and spans are on time as in live traffic.
STREAM_RATE = 1000.0
#: Messages kept from the ceiling run for the in-process (no Kafka) decode reference.
IN_PROCESS_SAMPLE = 2000


def security() -> KafkaSecurity:
    """The run's Kafka security settings (``SPANSTREAM_KAFKA_*``), as the worker reads them."""
    from pipeline.settings import load_settings

    return load_settings().kafka_security


def create_topics(bootstrap: str, names: BenchNames) -> int:
    """Create the run's topics from ``topics/topics.yaml``; returns input partitions.

    The declarations include the window stage's changelog topics, so the worker
    finds every topic it needs, as a deployed one does after ``topics apply``.
    """
    from pipeline.settings import load_settings
    from pipeline.topics.admin import TopicAdmin
    from pipeline.topics.declarations import DEFAULT_TOPICS_FILE, load_declarations
    from pipeline.topics.reconcile import apply

    settings = load_settings(
        kafka_bootstrap=bootstrap,
        input_topic=names.input,
        dlq_topic=names.dlq,
        alert_topic=names.alerts,
        partials_topic=names.partials,
        group=names.group,
    )
    decls = load_declarations(DEFAULT_TOPICS_FILE, settings)
    result = apply(TopicAdmin(bootstrap, security=settings.kafka_security), decls)
    pending = [i.decl.name for i in result.final if i.action == "create"]
    if pending:
        raise BenchFailed(f"topics not created: {pending}")
    return next(d.partitions for d in decls if d.name == names.input)


def delete_run(bootstrap: str, names: BenchNames) -> list[str]:
    """Delete the run's topics (its own and Faust's, all named ``prefix*``) and groups."""
    from confluent_kafka.admin import AdminClient

    # log_level 2: a broker that went away fails the call once instead of logging each retry.
    admin = AdminClient({**librdkafka_config(bootstrap, security()), "log_level": 2})
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

    connect = librdkafka_config(bootstrap, security())
    consumer = Consumer({**connect, "group.id": f"{topic}-watermarks"})
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
    sink = KafkaSink(bootstrap, topic, security=security())
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
        topic,
        **aiokafka_kwargs(bootstrap, security()),
        group_id=group,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    messages = spans = 0
    t0: float | None = None
    cpu0 = 0.0
    progress = Progress(options.progress_s)
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
