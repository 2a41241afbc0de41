"""The in-process references of ``spanstream bench``: the ingest core without Kafka."""

from __future__ import annotations

from pipeline.bench.inprocess import in_process_rates, run_core
from pipeline.enrich import Enricher
from pipeline.generate.messages import Framing, to_messages
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.otlp import decode_message


def _values(count: int) -> list[bytes]:
    spec = StreamSpec(seed=3, start_ns=1_700_000_000 * 10**9, rate=200.0, count=count)
    return [m.value for m in to_messages(generate_traces(spec), Framing("otlp_proto"))]


def test_the_core_keeps_every_error_trace_and_decides_the_same_every_time() -> None:
    values = _values(300)
    enricher = Enricher()
    traces = [decode_message(v, None, max_bytes=1 << 24, enricher=enricher).spans for v in values]
    with_errors = sum(len(t) for t in traces if any(s.is_error for s in t))
    kept = run_core(values)
    assert with_errors < kept < sum(map(len, traces))
    assert kept == run_core(values)  # a manual clock: the same decisions


def test_rates_cover_parse_decode_and_core() -> None:
    rates = in_process_rates(_values(40), passes=1)
    assert rates["messages"] == 40
    names = ("from_string", "decode_message", "ingest_core")
    assert all(rates[f"{name}_spans_per_s"] > 0 for name in names)  # timings: no order asserted
