"""Compare the pipeline's otlp_proto decoding with the pre-scan decoder (the oracle)."""

from __future__ import annotations

from pipeline.enrich import EnrichConfig, Enricher
from pipeline.errors import DecodeError
from pipeline.model import Span
from pipeline.otlp import decode_message
from pipeline.otlp.decode import choose_encoding
from pipeline.otlp.heads import SpanHead, head_columns, span_size, to_span
from pipeline.otlp.ids import KIND_NUMBERS
from pipeline.sinks.clickhouse import span_columns, trace_arrays
from pipeline.store.arrow import column_array
from tests.unit.otlp.reference_proto import spans_from_proto as reference_spans

FACTS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "timestamp_ns",
    "duration_ns",
    "operation",
    "is_error",
)
Outcome = tuple[str, str] | list[Span]


def reference_outcome(value: bytes, enricher: Enricher) -> Outcome:
    """What the pre-scan decode_message gave: its spans, or (reason, detail).

    Records taken for JSON (a first byte ``{``) never reach either proto decoder:
    for those the JSON decoder, unchanged, is the reference.
    """
    if choose_encoding(value, None) == "otlp_json":
        return head_outcome(value, enricher)[0]
    try:
        spans = reference_spans(value, enricher)
    except DecodeError as exc:
        return (exc.reason, exc.detail)
    except RecursionError:
        return ("too_deep", "nesting exceeds the recursion limit")
    except Exception as exc:  # decode_message's contract: anything else is bad_proto
        return ("bad_proto", f"{type(exc).__name__}: {exc}")
    return spans if spans else ("no_spans", "otlp_proto message holds no spans")


def head_outcome(value: bytes, enricher: Enricher) -> tuple[Outcome, list[SpanHead]]:
    try:
        heads = decode_message(value, None, max_bytes=1 << 24, enricher=enricher).spans
    except DecodeError as exc:
        return (exc.reason, exc.detail), []
    return [to_span(head) for head in heads], heads


def assert_equivalent(values: list[bytes], config: EnrichConfig | None = None) -> None:
    """Decode ``values`` in order with both decoders (one enricher each) and compare."""
    ours, theirs = Enricher(config), Enricher(config)
    for value in values:
        expected = reference_outcome(value, theirs)
        got, heads = head_outcome(value, ours)
        assert got == expected
        for head, span in zip(heads, expected, strict=False):
            assert isinstance(span, Span)
            assert head.row_bytes == span_size(span)
            assert head.kind == KIND_NUMBERS.get(span.span_kind, 0)
            assert [getattr(head, f) for f in FACTS] == [getattr(span, f) for f in FACTS]
            # Windows and sampling key by the series service; stored rows by the real one.
            assert head.service_name == theirs.series_service(span.service_name)
        if heads:  # the otel_traces rows of kept spans, read natively from the bytes
            native = [h for h in heads if h.span is None]
            oracle = [s for h, s in zip(heads, expected, strict=True) if h.span is None]
            reference = span_columns(oracle)  # type: ignore[arg-type]
            assert head_columns(native) == reference
            arrays = trace_arrays(native)
            for name, values in reference.items():
                assert arrays[name].equals(column_array(values, arrays[name].type)), name
        assert ours._operations == theirs._operations
