"""Micro-benchmark: decode+enrich spans/s vs a bare ``ExportTraceServiceRequest`` parse.

Run ``python -m pipeline.otlp.bench_decode`` (options: ``--spans``,
``--attributes``, ``--seconds``). The message is one trace of N spans with M
string/int attributes each, as an instrumented HTTP service would send.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipeline.enrich import Enricher
from pipeline.otlp.decode import PROTOBUF_BACKEND, decode_message
from pipeline.otlp.samples import sample_message


@dataclass(frozen=True, slots=True)
class BenchResult:
    """Throughputs in spans per second and their ratio."""

    bare_spans_per_s: float
    decode_spans_per_s: float
    message_bytes: int

    @property
    def ratio(self) -> float:
        """decode+enrich throughput as a fraction of the bare parse."""
        return self.decode_spans_per_s / self.bare_spans_per_s


def _rate(func: Callable[[], object], spans: int, seconds: float) -> float:
    loops = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            func()
        loops += 20
        now = time.perf_counter()
        if now >= deadline:
            return loops * spans / (now - start)


def run_bench(
    spans: int = 20, attributes: int = 10, seconds: float = 2.0, rounds: int = 3
) -> BenchResult:
    """Measure both throughputs on :func:`sample_message`.

    The two are measured alternately for ``rounds`` rounds and the best of each
    kept, so a busy machine skews both the same way.
    """
    payload = sample_message(spans, attributes)
    enricher = Enricher()
    parse = ExportTraceServiceRequest.FromString

    def bare() -> object:
        return parse(payload)

    def full() -> object:
        return decode_message(payload, None, max_bytes=1 << 20, enricher=enricher)

    slice_seconds = seconds / (2 * rounds)
    bare_best = decode_best = 0.0
    for _ in range(rounds):
        bare_best = max(bare_best, _rate(bare, spans, slice_seconds))
        decode_best = max(decode_best, _rate(full, spans, slice_seconds))
    return BenchResult(bare_best, decode_best, len(payload))


def main(argv: list[str] | None = None) -> int:
    """Print bare parse and decode+enrich spans/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=20)
    parser.add_argument("--attributes", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    result = run_bench(args.spans, args.attributes, args.seconds, args.rounds)
    print(f"protobuf backend: {PROTOBUF_BACKEND}; message {result.message_bytes} bytes")
    print(f"bare FromString:  {result.bare_spans_per_s:12,.0f} spans/s")
    print(f"decode+enrich:    {result.decode_spans_per_s:12,.0f} spans/s")
    print(f"ratio:            {result.ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
