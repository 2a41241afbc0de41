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
decoding it); the pipeline counts from its first counter sample (a scrape of
its ``/metrics`` every :data:`SCRAPE_INTERVAL_S`) showing progress, the messages
before it excluded. Memory is read every :data:`SAMPLE_INTERVAL_S`.
Each also gets the CPU time its process used meanwhile (all threads), so
spans per CPU-second can be compared on a machine that is busy with other
work. The pipeline's *drain* (the last message consumed until every offset is
committed) is reported on its own: it is dominated by the tail-sampling
decision wait (``SPANSTREAM_DECISION_WAIT_SECONDS``), a latency, not a
throughput limit.

:func:`run_bench` does the I/O; the small pure helpers around it
(:func:`parse_metrics`, :func:`steady_rate`, :func:`format_report`) are what
the unit tests check.

Modules: :mod:`~pipeline.bench.options` (options, run names, the error type),
:mod:`~pipeline.bench.report` (results, the pure helpers, the report),
:mod:`~pipeline.bench.kafka` (topics, fill, the ceiling, in-process decode rates),
:mod:`~pipeline.bench.worker` (the pipeline measurement) and
:mod:`~pipeline.bench.run` (:func:`run_bench` itself).
"""

from __future__ import annotations

from pipeline.bench.options import BenchFailed, BenchNames, BenchOptions
from pipeline.bench.report import (
    CEILING_DECODER,
    METRIC_NAMES,
    SAMPLE_INTERVAL_S,
    SCRAPE_INTERVAL_S,
    TARGET_RATIO,
    BenchResult,
    Filled,
    Measurement,
    PipelineRun,
    Sample,
    format_report,
    parse_metrics,
    steady_rate,
)
from pipeline.bench.run import default_bootstrap, run_bench

__all__ = [
    "CEILING_DECODER",
    "METRIC_NAMES",
    "SAMPLE_INTERVAL_S",
    "SCRAPE_INTERVAL_S",
    "TARGET_RATIO",
    "BenchFailed",
    "BenchNames",
    "BenchOptions",
    "BenchResult",
    "Filled",
    "Measurement",
    "PipelineRun",
    "Sample",
    "default_bootstrap",
    "format_report",
    "parse_metrics",
    "run_bench",
    "steady_rate",
]
