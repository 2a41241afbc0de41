"""CPU per span of the in-process pipeline with one native port swapped for its Python reference.

Usage: python infra/native-probe/ports.py [--messages 2000] [--rounds 7] [--sink arrays|columns]

Input is what ``spanstream bench`` produces by default (the generator in simulated
mode, otlp_proto, one trace per message, ~20 spans per trace, seed 1). Each
round runs every variant once, in an order rotated per round, and times it with
``time.process_time`` (CPU of this process only, so other users of the machine
count little). A variant monkeypatches the module that imports the native
function, runs ``run_core`` (the bench's in-process ingest core), and restores.
The sink step is the worker's: ``trace_arrays`` (chdb, the default store) or
``trace_columns`` (a ClickHouse server).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

Patch = list[tuple[Any, str, Any]]


def bench_messages(messages: int, seed: int = 1) -> list[bytes]:
    """The values ``spanstream bench`` fills its topic with (default options)."""
    from pipeline.generate.messages import Framing, to_messages
    from pipeline.generate.schedule import StreamSpec, generate_traces

    spec = StreamSpec(
        seed=seed,
        start_ns=time.time_ns() - int(messages / 1000.0 * 1e9),
        rate=1000.0,
        count=messages,
        mean_spans=20,
        amplitude=0.0,
    )
    framing = Framing("otlp_proto", batch_traces=0, seed=seed)
    return [m.value for m in to_messages(generate_traces(spec), framing)]


@contextlib.contextmanager
def patched(patches: Patch) -> Iterator[None]:
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


# --- the Python references (the definitions the equivalence tests state) -------------------


def py_trace_hash(trace_id: str, salt: bytes) -> int:
    from pipeline.sampling.probabilistic import fmix64, fnv1a_64, trace_id_bytes

    return fmix64(fnv1a_64(salt + trace_id_bytes(trace_id)))


def py_any_error(spans: Any) -> bool:
    return any(s.is_error for s in spans)


def py_representative(spans: Any) -> Any:
    root = next((s for s in spans if not s.parent_span_id), None)
    if root is not None:
        return root
    return max(spans, key=lambda s: s.duration_ns, default=None)


def py_by_trace(spans: Any) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for s in spans:
        groups.setdefault(s.trace_id, []).append(s)
    return groups


def py_per_service(spans: Any, row_bytes: Callable[[Any], int]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for s in spans:
        entry = out.setdefault(s.service_name, [0, 0])
        entry[0] += 1
        entry[1] += row_bytes(s)
    return out


def py_latency_observe(ops: OrderedDict[Any, Any], spans: Any, new_op: Callable[[], Any]) -> None:
    # LatencyState.observe per span (the caller already ruled out evictions).
    for s in spans:
        key = (s.service_name, s.operation)
        op = ops.get(key)
        if op is None:
            op = ops[key] = new_op()
        else:
            ops.move_to_end(key)
        op.hist.add(float(s.duration_ns))
        op.since_refresh += 1


def py_hist_extend(hist: Any, values: list[float]) -> None:
    for v in values:
        hist.add(v)


def py_fields(value: bytes, offset: int, length: int, kv: Any, ev: Any, lk: Any) -> tuple[Any, ...]:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

    from pipeline.otlp.otlp_proto import _events, _links, attributes

    m = ProtoSpan.FromString(value[offset : offset + length])
    return (
        attributes(m.attributes),
        _events(m.events),
        _links(m.links),
        m.name,
        m.trace_state,
        m.kind,
        m.status.code,
        m.status.message,
    )


def py_columns(heads: list[Any], kv: Any, kinds: Any, statuses: Any) -> dict[str, list[Any]]:
    from pipeline.otlp.heads import to_span
    from pipeline.sinks.clickhouse import span_columns

    return span_columns([to_span(h) for h in heads])


_ARROW_TYPES: dict[str, Any] = {}


def py_arrow_columns(heads: list[Any], kv: Any, kinds: Any, statuses: Any) -> dict[str, Any]:
    # Returns pyarrow arrays; py_head_arrays below takes them as they are.
    from pipeline.store.arrow import column_array

    cols = py_columns(heads, kv, kinds, statuses)
    return {name: column_array(values, _ARROW_TYPES[name]) for name, values in cols.items()}


def py_head_arrays(heads: list[Any]) -> dict[str, Any]:
    return py_arrow_columns(heads, None, None, None)


def _window_patches() -> Patch:
    """PartialAggregator as it was before window_add: a WindowStats per key."""
    from pipeline.windows import partial
    from pipeline.windows.stats import WindowStats

    def add_record(self: Any, spans: Any, offset: int, watermark_cap_ns: int | None = None) -> bool:
        if offset <= self._through:
            return False
        if not spans:
            return True
        if self._last_offset is None:
            self._first_offset = offset
        elif offset < self._last_offset:
            raise ValueError(offset)
        self._last_offset = offset
        window_ns, accumulators, watermark = self.window_ns, self._acc, self._watermark_ns
        for span in spans:
            ts = span.timestamp_ns
            mark = ts if watermark_cap_ns is None or ts < watermark_cap_ns else watermark_cap_ns
            if watermark is None or mark > watermark:
                watermark = mark
            key = (span.service_name, span.operation, ts - ts % window_ns)
            acc = accumulators.get(key)
            if acc is None:
                acc = accumulators[key] = WindowStats(self.max_exemplars)
            duration = span.duration_ns
            acc.add(duration if duration > 0 else 0, span.is_error, span.trace_id)
        self._watermark_ns = watermark
        return True

    def _partial(self: Any, key: Any, acc: Any, first: int, last: int) -> Any:
        service, operation, start = key
        return partial.Partial(
            service=service,
            operation=operation,
            window_start_ns=start,
            window_end_ns=start + self.window_ns,
            requests=acc.requests,
            errors=acc.errors,
            sketch=acc.sketch,
            max_ms=acc.max_ms,
            exemplars=acc.exemplars,
            source_partition=self.source_partition,
            first_offset=first,
            last_offset=last,
            watermark_ns=self._watermark_ns,
        )

    cls = partial.PartialAggregator
    return [(cls, "add_record", add_record), (cls, "_partial", _partial)]


def variants() -> dict[str, Patch]:
    from pipeline import app
    from pipeline.ingest import volume
    from pipeline.otlp import heads
    from pipeline.sampling import buffer, errors, latency, policy, probabilistic, sketch, stats
    from pipeline.sinks import clickhouse

    never_valid = lambda _v: False  # noqa: E731
    no_scan = lambda *_a: None  # noqa: E731
    return {
        "native": [],
        "trace_hash": [(probabilistic, "native_trace_hash", py_trace_hash)],
        "any_error": [(errors, "any_error", py_any_error)],
        "representative": [(policy, "representative", py_representative)],
        "by_trace": [(buffer, "by_trace", py_by_trace)],
        "per_service": [(m, "per_service", py_per_service) for m in (app, volume, stats)],
        "latency_observe": [(latency, "latency_observe", py_latency_observe)],
        "hist_extend": [(sketch, "hist_extend", py_hist_extend)],
        "window_add": _window_patches(),
        "valid": [(heads, "valid", never_valid)],
        "scan+valid": [(heads, "scan", no_scan), (heads, "valid", never_valid)],
        "fields": [(heads, "fields", py_fields)],
        "columns": [(heads, "columns", py_columns)],
        "arrow_columns": [(clickhouse, "_head_arrays", py_head_arrays)],
        "all_python": [],  # filled below
    }


def run_once(values: list[bytes], sink: str) -> tuple[float, int]:
    from pipeline.bench import inprocess
    from pipeline.sinks import clickhouse

    to_cols = clickhouse.trace_arrays if sink == "arrays" else clickhouse.trace_columns
    with patched([(clickhouse, "trace_columns", _rows_of(to_cols))]):
        gc.collect()
        start = time.process_time()
        kept = inprocess.run_core(values)
        return time.process_time() - start, kept


def _rows_of(to_cols: Callable[[Any], Any]) -> Callable[[Any], dict[str, Any]]:
    # run_core counts len(columns["SpanId"]): an Arrow array has a len too.
    return lambda spans: to_cols(spans)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--sink", choices=["arrays", "columns"], default="arrays")
    ap.add_argument("--only", default="", help="comma-separated variants (native always runs)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    from pipeline.otlp.decode import PROTOBUF_BACKEND
    from pipeline.sinks.clickhouse import _head_arrays

    values = bench_messages(args.messages)
    _ARROW_TYPES.update({k: v.type for k, v in _head_arrays([]).items()})
    table = variants()
    table["all_python"] = [p for name, ps in table.items() for p in ps if name != "valid"]
    names = list(table)
    if args.only:
        names = ["native", *[n for n in args.only.split(",") if n != "native"]]
    # Every variant keeps exactly the same traces (the references are exact).
    spans_in = _spans(values)
    kept_expected = run_once(values, args.sink)[1]
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            with patched(table[name]):
                cpu, kept = run_once(values, args.sink)
            if kept != kept_expected:
                sys.exit(f"{name}: kept {kept} spans, native kept {kept_expected}")
            times[name].append(cpu / spans_in * 1e6)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    base = statistics.median(times["native"])
    rows = []
    for name in names:
        t = times[name]
        med = statistics.median(t)
        rows.append(
            {
                "variant": name,
                "us_per_span_median": round(med, 3),
                "min": round(min(t), 3),
                "max": round(max(t), 3),
                "saves_us_per_span": round(med - base, 3),
                "saves_pct_of_native": round(100 * (med - base) / base, 1),
            }
        )
    print(
        f"backend={PROTOBUF_BACKEND} messages={len(values)} spans={spans_in} "
        f"kept_spans={kept_expected} rounds={args.rounds} sink={args.sink}"
    )
    print(f"{'variant':<16}{'us/span med':>12}{'min':>9}{'max':>9}{'saves us':>10}{'saves %':>9}")
    for row in rows:
        print(
            f"{row['variant']:<16}{row['us_per_span_median']:>12.3f}{row['min']:>9.3f}"
            f"{row['max']:>9.3f}{row['saves_us_per_span']:>10.3f}"
            f"{row['saves_pct_of_native']:>9.1f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "spans": spans_in, "rows": rows, "raw": times}, f)


def _spans(values: list[bytes]) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    req = ExportTraceServiceRequest.FromString
    return sum(len(s.spans) for v in values for r in req(v).resource_spans for s in r.scope_spans)


if __name__ == "__main__":
    main()
