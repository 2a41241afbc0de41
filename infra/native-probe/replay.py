"""CPU each native port saves, timed on the very calls the in-process pipeline makes.

Usage: python infra/native-probe/replay.py [--messages 1000] [--reps 9]

The end-to-end A/B of ports.py cannot resolve a few percent on a shared machine
(the same variant spreads by +-30%). Here one ``run_core`` pass on the bench
input records the arguments of every call of each native function; then, per
function, the recorded calls are replayed with the native function and with its
Python reference (ports.py), alternating, ``--reps`` times each, each replay timed
with ``time.process_time``. Stateful ports are replayed on fresh state
(``latency_observe`` on a new LatencyState, ``window_add`` on new aggregators,
``scan`` with a new Enricher). The saving per span is divided by the native
pipeline's own CPU per span (``run_core``, timed the same way) for its share.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import ports


def cpu(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.process_time()
    fn()
    return time.process_time() - start


def each(fn: Callable[..., Any], args: list[tuple[Any, ...]]) -> None:
    """Call ``fn`` on every recorded argument tuple, dropping results (as the pipeline does)."""
    for a in args:
        fn(*a)


def record(obj: Any, name: str, calls: list[tuple[Any, ...]]) -> tuple[Any, str, Any]:
    original = getattr(obj, name)

    def recorder(*args: Any) -> Any:
        calls.append(args)
        return original(*args)

    return (obj, name, recorder)


def capture(values: list[bytes]) -> dict[str, list[tuple[Any, ...]]]:
    from pipeline import app
    from pipeline.ingest import volume
    from pipeline.sampling import buffer, errors, latency, policy, probabilistic, stats
    from pipeline.sinks import clickhouse
    from pipeline.windows import partial

    calls: dict[str, list[tuple[Any, ...]]] = {
        k: []
        for k in (
            "trace_hash",
            "any_error",
            "representative",
            "by_trace",
            "per_service",
            "latency_observe",
            "add_record",
            "head_arrays",
        )
    }
    spots = [
        record(probabilistic, "native_trace_hash", calls["trace_hash"]),
        record(errors, "any_error", calls["any_error"]),
        record(policy, "representative", calls["representative"]),
        record(buffer, "by_trace", calls["by_trace"]),
        record(latency, "latency_observe", calls["latency_observe"]),
        record(clickhouse, "_head_arrays", calls["head_arrays"]),
        *[record(m, "per_service", calls["per_service"]) for m in (app, volume, stats)],
    ]
    agg_calls = calls["add_record"]
    original_add = partial.PartialAggregator.add_record

    def add_record(self: Any, *args: Any) -> bool:
        agg_calls.append((self.source_partition, self.window_ns, *args))
        return original_add(self, *args)

    spots.append((partial.PartialAggregator, "add_record", add_record))
    with ports.patched(spots):
        ports.run_once(values, "arrays")
    return calls


def replays(values: list[bytes], calls: dict[str, list[tuple[Any, ...]]]) -> dict[str, Any]:
    """name -> (native replay, reference replay)."""
    from pipeline.enrich import Enricher
    from pipeline.otlp import _heads
    from pipeline.otlp.heads import _heads_in_python, head_columns, heads_from_proto
    from pipeline.otlp.otlp_proto import parse_request
    from pipeline.sampling.latency import LatencyState
    from pipeline.sinks import clickhouse
    from pipeline.windows import partial

    def pure(native: Callable[..., Any], ref: Callable[..., Any], name: str) -> Any:
        args = calls[name]
        return (lambda: each(native, args), lambda: each(ref, args))

    def observe(fn: Callable[..., Any]) -> Callable[[], None]:
        def run() -> None:
            state = LatencyState()
            for _ops, spans, _ in calls["latency_observe"]:
                fn(state._ops, spans, state._new_op)

        return run

    def windows(patches: ports.Patch) -> Callable[[], None]:
        def run() -> None:
            with ports.patched(patches):
                aggs: dict[int, Any] = {}
                for source, window_ns, spans, offset, *cap in calls["add_record"]:
                    agg = aggs.get(source)
                    if agg is None:
                        agg = aggs[source] = partial.PartialAggregator(window_ns // 10**9, source)
                    agg.add_record(spans, offset, *cap)
                for agg in aggs.values():
                    agg.cut()

        return run

    one = [(v,) for v in values]
    heads_kept = [a[0] for a in calls["head_arrays"]]
    kept_heads = [h for hs in heads_kept for h in hs]
    native_arrays = clickhouse._head_arrays

    def py_heads(v: bytes, enricher: Any) -> Any:
        return _heads_in_python(parse_request(v), enricher)

    def decode(fn: Callable[[bytes, Any], Any]) -> Callable[[], None]:
        def run() -> None:
            enricher = Enricher()
            for v in values:
                fn(v, enricher)

        return run

    def fields(fn: Callable[..., Any]) -> Callable[[], None]:
        from pipeline.model import SpanEvent, SpanLink
        from pipeline.otlp.heads import _kv_string

        return lambda: each(
            fn, [(h.value, h.offset, h.length, _kv_string, SpanEvent, SpanLink) for h in kept_heads]
        )

    return {
        "trace_hash": pure(_heads.trace_hash, ports.py_trace_hash, "trace_hash"),
        "any_error": pure(_heads.any_error, ports.py_any_error, "any_error"),
        "representative": pure(_heads.representative, ports.py_representative, "representative"),
        "by_trace": pure(_heads.by_trace, ports.py_by_trace, "by_trace"),
        "per_service": pure(_heads.per_service, ports.py_per_service, "per_service"),
        "latency_observe": (observe(_heads.latency_observe), observe(ports.py_latency_observe)),
        "window_add": (windows([]), windows(ports._window_patches())),
        "valid": (lambda: each(_heads.valid, one), lambda: each(parse_request, one)),
        "scan+valid": (decode(heads_from_proto), decode(py_heads)),
        "arrow_columns": (
            lambda: each(native_arrays, [(h,) for h in heads_kept]),
            lambda: each(ports.py_head_arrays, [(h,) for h in heads_kept]),
        ),
        "columns": (
            lambda: each(head_columns, [(h,) for h in heads_kept]),
            lambda: each(ports.py_columns, [(h, None, None, None) for h in heads_kept]),
        ),
        "fields": (fields(_heads.fields), fields(ports.py_fields)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    from pipeline.sinks.clickhouse import _head_arrays

    values = ports.bench_messages(args.messages)
    ports._ARROW_TYPES.update({k: v.type for k, v in _head_arrays([]).items()})
    spans = ports._spans(values)
    calls = capture(values)
    pipeline = [cpu(lambda: ports.run_once(values, "arrays")) for _ in range(args.reps)]
    base_med, base_min = statistics.median(pipeline), min(pipeline)
    table = replays(values, calls)
    rows = []
    for name, (native, ref) in table.items():
        ts: dict[str, list[float]] = {"n": [], "r": []}
        native(), ref()  # warm caches and imports
        for _ in range(args.reps):
            ts["n"].append(cpu(native))
            ts["r"].append(cpu(ref))
        n_med, r_med = statistics.median(ts["n"]), statistics.median(ts["r"])
        n_min, r_min = min(ts["n"]), min(ts["r"])
        rows.append(
            {
                "port": name,
                "native_us": 1e6 * n_med / spans,
                "python_us": 1e6 * r_med / spans,
                "saves_us": 1e6 * (r_med - n_med) / spans,
                "saves_us_min": 1e6 * (r_min - n_min) / spans,
                "spread_us": 1e6 * (max(ts["r"]) - r_min + max(ts["n"]) - n_min) / spans,
                "share_pct": 100 * (r_med - n_med) / base_med,
                "share_pct_min": 100 * (r_min - n_min) / base_min,
            }
        )
        print(f"{name} done", file=sys.stderr)
    print(
        f"messages={len(values)} spans={spans} reps={args.reps} pipeline native us/span: "
        f"median {1e6 * base_med / spans:.3f} min {1e6 * base_min / spans:.3f} "
        f"max {1e6 * max(pipeline) / spans:.3f}"
    )
    head = [
        "port",
        "native_us",
        "python_us",
        "saves_us",
        "saves_us_min",
        "spread_us",
        "share_pct",
        "share_pct_min",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        cells = [row["port"]] + [
            f"{row[k]:.3f}" if "us" in k else f"{row[k]:.1f}" for k in head[1:]
        ]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "rows": rows, "pipeline_s": pipeline})
        )


if __name__ == "__main__":
    main()
