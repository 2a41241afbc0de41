"""``spanstream generate``: synthetic multi-service OTLP traces with labelled anomalies, to Kafka.

Records look exactly like the Collector kafka exporter's (``otlp_proto`` or
``otlp_json``, one trace per record keyed by hex trace id by default).

>>> parse_start_time("2024-05-01T00:00:00Z")
1714521600000000000
>>> parse_start_time("1714521600.5")
1714521600500000000
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import ConfigError
from pipeline.settings import load_settings

log = logging.getLogger("spanstream.generate")


def parse_start_time(raw: str) -> int:
    """``--start-time``: ``now``, Unix seconds or ISO-8601 (UTC if no zone) -> Unix ns."""
    if raw == "now":
        return time.time_ns()
    try:
        return int(float(raw) * 1e9) if raw.replace(".", "", 1).isdigit() else _iso(raw)
    except ValueError:
        raise ConfigError(f"--start-time={raw!r}: expected now, Unix seconds or ISO-8601") from None


def _iso(raw: str) -> int:
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000


def register(subparsers: Any) -> None:
    """Add the ``generate`` subcommand."""
    settings = load_settings()
    p = subparsers.add_parser(
        "generate",
        help="send synthetic OTLP traces (with labelled anomalies) to Kafka",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = p.add_argument
    add("--bootstrap", default=settings.kafka_bootstrap, help="Kafka bootstrap (SPANSTREAM_KAFKA)")
    add("--topic", default=settings.input_topic, help="topic (SPANSTREAM_INPUT_TOPIC)")
    add("--rate", type=float, default=100.0, help="mean traces/s over a day")
    add("--count", type=int, default=None, help="stop after N traces")
    add("--duration", type=float, default=None, help="stop after S seconds of stream time")
    add(
        "--start-time",
        default=None,
        help="simulated mode: virtual clock from this time (now, Unix s, ISO-8601), sent as fast "
        "as possible; without it: real time, paced by the wall clock",
    )
    add("--seed", type=int, default=1, help="random seed: same seed, same traces")
    add("--spans-per-trace", type=int, default=20, help="mean spans per trace")
    add("--error-rate", type=float, default=0.01, help="baseline error probability per span")
    add("--diurnal-amplitude", type=float, default=0.3, help="daily rate swing, within [0, 1)")
    add("--day-seconds", type=float, default=86_400.0, help="length of one rate-curve day")
    add("--environment", default="production", help="deployment.environment resource attribute")
    add(
        "--anomaly",
        action="append",
        default=[],
        help="KIND:key=value,... with KIND latency_spike|error_burst|saturation|traffic_drop, "
        "keys service, op, instance (pod or node), version, start, duration (s from stream "
        "start), factor, rate; repeatable",
    )
    add("--encoding", choices=("otlp_proto", "otlp_json"), default="otlp_proto", help="payload")
    add("--split-traces", type=float, default=0.0, help="share of traces sent in 2 messages")
    add("--split-delay", type=float, default=2.0, help="seconds between a split trace's parts")
    add("--batch-traces", type=int, default=0, help="N>0: N traces per message, no key")
    add("--content-type-header", action="store_true", help="add a content-type header")
    add(
        "--compression",
        choices=("none", "gzip", "snappy", "lz4", "zstd"),
        default="none",
        help="producer compression.type",
    )
    add("--linger-ms", type=int, default=20, help="producer linger.ms")
    add("--manifest", default=None, help="write a JSON-lines manifest of what was sent here")
    add("--progress-seconds", type=float, default=5.0, help="progress log interval")
    p.set_defaults(func=run)


def _validate(args: argparse.Namespace, realtime: bool) -> None:
    checks = [
        ("--rate", args.rate > 0, "must be > 0"),
        ("--count", args.count is None or args.count > 0, "must be > 0"),
        ("--duration", args.duration is None or args.duration > 0, "must be > 0"),
        ("--spans-per-trace", args.spans_per_trace > 0, "must be > 0"),
        ("--error-rate", 0 <= args.error_rate <= 1, "must be within [0, 1]"),
        ("--diurnal-amplitude", 0 <= args.diurnal_amplitude < 1, "must be within [0, 1)"),
        ("--day-seconds", args.day_seconds > 0, "must be > 0"),
        ("--split-traces", 0 <= args.split_traces <= 1, "must be within [0, 1]"),
        ("--batch-traces", args.batch_traces >= 0, "must be >= 0"),
    ]
    for name, ok, rule in checks:
        if not ok:
            raise ConfigError(f"{name}={getattr(args, name[2:].replace('-', '_'))!r}: {rule}")
    if not realtime and args.count is None and args.duration is None:
        raise ConfigError("--start-time (simulated mode) needs --count or --duration")


def run(args: argparse.Namespace) -> int:
    """Run the generator with the parsed options; returns 0 once every record is delivered."""
    from pipeline.generate.anomalies import parse_anomaly
    from pipeline.generate.manifest import ManifestWriter
    from pipeline.generate.messages import Framing
    from pipeline.generate.produce import KafkaSink
    from pipeline.generate.runner import RunOptions, run_generator
    from pipeline.generate.schedule import StreamSpec

    realtime = args.start_time is None
    _validate(args, realtime)
    spec = StreamSpec(
        seed=args.seed,
        start_ns=time.time_ns() if realtime else parse_start_time(args.start_time),
        rate=args.rate,
        count=args.count,
        duration_s=args.duration,
        mean_spans=args.spans_per_trace,
        base_error_rate=args.error_rate,
        amplitude=args.diurnal_amplitude,
        day_seconds=args.day_seconds,
        environment=args.environment,
        anomalies=tuple(parse_anomaly(a) for a in args.anomaly),
    )
    framing = Framing(
        args.encoding, args.split_traces, args.split_delay, args.batch_traces, args.seed
    )
    sink = KafkaSink(
        args.bootstrap,
        args.topic,
        compression=args.compression,
        linger_ms=args.linger_ms,
        security=load_settings().kafka_security,
    )
    partitions = sink.check_ready()
    log.info("sending to %s (%d partitions) at %s", args.topic, partitions, args.bootstrap)
    options = RunOptions(realtime, args.content_type_header, args.progress_seconds)
    with contextlib.ExitStack() as stack:
        manifest = None
        if args.manifest:
            manifest = ManifestWriter(
                stack.enter_context(open(args.manifest, "w", encoding="utf-8"))
            )
        try:
            stats = run_generator(spec, framing, sink, manifest, options)
        except KeyboardInterrupt:
            # Deliver what is queued so the manifest's message lines are complete.
            sink.flush()
            return 130
    print(f"sent {stats.rates()}", file=sys.stderr)
    return 0
