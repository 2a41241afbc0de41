"""``spanstream bench``: full-pipeline spans/s per worker vs a bare aiokafka consumer, side by side.

One run fills a new, uniquely named topic once and measures on that same data
(a) the raw ceiling, a bare aiokafka consumer that only parses the protobuf
(``ExportTraceServiceRequest.FromString``), and (b) one ``spanstream worker``
process running the whole pipeline until every offset is committed. It prints
both rates, their ratio (target >= 0.30), the message size used and the
worker's peak memory. Uses the broker named by --bootstrap or SPANSTREAM_KAFKA,
else starts a local one (``infra/kafka/kafka.sh install`` must have run).
Everything it creates (topics, groups, a temporary directory) is removed
afterwards unless --keep-data. See pipeline/bench/ for what is measured.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline.errors import ConfigError


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand."""
    from pipeline.bench import BenchOptions, default_bootstrap

    d = BenchOptions()
    p = subparsers.add_parser(
        "bench",
        help="throughput benchmark: full pipeline vs a bare aiokafka consumer, side by side",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = p.add_argument
    add(
        "--bootstrap",
        default=default_bootstrap(),
        help="Kafka bootstrap servers (SPANSTREAM_KAFKA); unset: start a local broker",
    )
    add("--messages", type=int, default=d.messages, help="messages to produce and measure")
    add("--spans-per-trace", type=int, default=d.spans_per_trace, help="mean spans per trace")
    add(
        "--batch-traces",
        type=int,
        default=d.batch_traces,
        help="0: one trace per message keyed by trace id (partition_traces_by_id); "
        "N>0: N traces per message, no key",
    )
    add("--seed", type=int, default=d.seed, help="random seed of the synthetic traces")
    add("--timeout", type=float, default=d.timeout_s, help="seconds each phase may take")
    add("--progress-seconds", type=float, default=d.progress_s, help="progress log interval")
    add(
        "--max-buffered-traces",
        type=int,
        default=d.max_buffered_traces,
        help="the worker's SPANSTREAM_MAX_BUFFERED_TRACES (unset: its default); fetching pauses "
        "at this many undecided traces, which bounds a backlog's read rate to this many per "
        "decision wait",
    )
    add("--keep-data", action="store_true", help="keep the topics and the temporary directory")
    add("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def _validate(args: argparse.Namespace) -> None:
    checks = [
        ("--messages", args.messages >= 10, "must be >= 10"),
        ("--spans-per-trace", 1 <= args.spans_per_trace <= 1000, "must be within [1, 1000]"),
        ("--batch-traces", 0 <= args.batch_traces <= 1000, "must be within [0, 1000]"),
        ("--timeout", args.timeout > 0, "must be > 0"),
        ("--progress-seconds", args.progress_seconds > 0, "must be > 0"),
        (
            "--max-buffered-traces",
            args.max_buffered_traces is None or args.max_buffered_traces >= 1,
            "must be >= 1",
        ),
    ]
    for name, ok, rule in checks:
        if not ok:
            raise ConfigError(f"{name}={getattr(args, name[2:].replace('-', '_'))!r}: {rule}")
    if args.bootstrap is not None and not args.bootstrap.strip():
        raise ConfigError("--bootstrap='': expected host:port[,host:port...]")
    spans = args.spans_per_trace * max(1, args.batch_traces)
    if spans > 2000:
        raise ConfigError(
            f"--spans-per-trace x --batch-traces = {spans} spans/message: must be <= 2000 "
            "(messages beyond ~1 MB exceed the exporter's max_message_bytes)"
        )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table (or JSON); 0 once both measurements completed."""
    _validate(args)
    from pipeline.bench import BenchOptions, format_report, run_bench

    options = BenchOptions(
        messages=args.messages,
        spans_per_trace=args.spans_per_trace,
        batch_traces=args.batch_traces,
        seed=args.seed,
        timeout_s=args.timeout,
        progress_s=args.progress_seconds,
        keep_data=args.keep_data,
        max_buffered_traces=args.max_buffered_traces,
    )
    result = run_bench(options, bootstrap=args.bootstrap)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_report(result))
    return 0
