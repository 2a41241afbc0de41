"""What one run measured, the pure helpers computing it, and the report printed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.bench.options import BenchFailed, BenchOptions

#: The issue's target: the full pipeline at >= 30% of the raw ceiling.
TARGET_RATIO = 0.30
#: Seconds between samples of the worker's memory (/proc, costs the worker nothing).
SAMPLE_INTERVAL_S = 0.2
#: Seconds between scrapes of the worker's /metrics. Rendering the exposition costs
#: the worker's GIL (5-8 % of a backlog run at 0.2 s); Prometheus scrapes every
#: 15-60 s, so once a second is already harsh.
SCRAPE_INTERVAL_S = 1.0
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
    #: The worker's SPANSTREAM_MAX_BUFFERED_TRACES: fetching pauses at this many traces
    #: awaiting a decision, so a backlog is read at most this many per decision wait.
    max_buffered_traces: int = 0

    @property
    def fetch_bound_spans_per_s(self) -> float:
        """The steady-state read rate the buffered-trace bound allows (0: unknown)."""
        if not self.max_buffered_traces or self.decision_wait_s <= 0:
            return 0.0
        traces_per_s = self.max_buffered_traces / self.decision_wait_s
        return traces_per_s * self.filled.spans_per_message / max(1, self.options.batch_traces)

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
            "max_buffered_traces": self.max_buffered_traces,
            "fetch_bound_spans_per_s": round(self.fetch_bound_spans_per_s, 1),
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
    pipeline.bench.options.BenchFailed: the worker never reached 500 messages (last sample: 100)
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


def mb(n: float) -> str:
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
        f"worker memory: peak RSS {mb(p.rss_peak_bytes)} (VmHWM {mb(p.rss_hwm_bytes)}, "
        f"sampled every {SAMPLE_INTERVAL_S}s: {mb(p.rss_sampled_peak_bytes)} in {p.samples} "
        f"samples), at start {mb(p.rss_start_bytes)};"
        f" peak unacked messages {p.peak_unacked_messages:,}",
    ]
    wait = r.decision_wait_s
    if p.rate.seconds < 2 * wait:
        lines.append(
            f"WARNING: the pipeline was measured over {p.rate.seconds:.1f}s, less than twice the "
            f"decision wait ({wait:g}s): its decide-and-write work mostly fell into the drain, "
            "so spans/s is optimistic; use more --messages"
        )
    bound = r.fetch_bound_spans_per_s
    if bound:
        capped = p.rate.spans_per_s > 0.8 * bound
        lines.append(
            f"fetch bound: SPANSTREAM_MAX_BUFFERED_TRACES={r.max_buffered_traces:,} undecided "
            f"traces, {wait:g}s decision wait: a backlog is read at most ~{bound:,.0f} spans/s"
            + (" (the pipeline ran at this bound, not at its CPU limit)" if capped else "")
        )
    if r.in_process:
        ip = r.in_process
        lines.append(
            f"in-process reference, no Kafka ({int(ip['messages'])} of the same messages): "
            f"FromString {ip['from_string_spans_per_s']:,.0f} spans/s, "
            f"decode_message (decode+enrich) {ip['decode_message_spans_per_s']:,.0f} spans/s"
            + (
                f", ingest core (+sampling, partials, kept rows) "
                f"{ip['ingest_core_spans_per_s']:,.0f} spans/s"
                if "ingest_core_spans_per_s" in ip
                else ""
            )
        )
    if r.machine:
        m = r.machine
        lines.append(
            f"machine: {int(m['cpus'])} CPUs, 1-min load average {m['load_before_ceiling']:.2f} "
            f"before the ceiling, {m['load_before_pipeline']:.2f} before the pipeline, "
            f"{m['load_after']:.2f} after"
        )
    return "\n".join(lines)
