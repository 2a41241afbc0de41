"""otel_traces columns of kept spans: native rows from heads equal the Span-built rows."""

from __future__ import annotations

from pipeline.enrich import Enricher
from pipeline.generate.messages import Framing, to_messages
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.otlp import decode_message
from pipeline.otlp.heads import SpanFacts, head_of, to_span
from pipeline.sinks.clickhouse import span_columns, trace_columns


def _heads(count: int) -> list[SpanFacts]:
    spec = StreamSpec(seed=4, start_ns=1_700_000_000 * 10**9, rate=50.0, count=count)
    enricher = Enricher()
    return [
        h
        for m in to_messages(generate_traces(spec), Framing("otlp_proto", seed=4))
        for h in decode_message(m.value, None, max_bytes=1 << 24, enricher=enricher).spans
    ]


def _rows(columns: dict[str, list[object]]) -> list[tuple[object, ...]]:
    return sorted(zip(*columns.values(), strict=True), key=lambda r: (r[1], r[2]))  # ids


def test_generated_heads_give_the_rows_their_spans_give() -> None:
    heads = _heads(60)
    spans = [to_span(h) for h in heads]
    assert sum(len(s.events) for s in spans) > 0 and sum(len(s.links) for s in spans) > 0
    assert trace_columns(heads) == span_columns(spans)


def test_built_spans_and_python_heads_mix_with_native_heads() -> None:
    heads = _heads(20)
    mixed: list[SpanFacts] = [
        to_span(h) if i % 3 == 0 else head_of(to_span(h)) if i % 3 == 1 else h
        for i, h in enumerate(heads)
    ]
    columns = trace_columns(mixed)
    assert list(columns) == list(span_columns([]))
    assert _rows(columns) == _rows(span_columns([to_span(h) for h in heads]))  # type: ignore[arg-type]
