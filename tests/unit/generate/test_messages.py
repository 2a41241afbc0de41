"""Kafka framings: keyed per trace, split traces, batched traces."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipeline.generate.encode import parse_otlp_json
from pipeline.generate.messages import Framing, Message, split_spans, to_messages
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.generate.traces import Trace

T0 = 1_714_521_600 * 10**9


def _traces(n: int = 40) -> list[Trace]:
    return list(generate_traces(StreamSpec(seed=2, start_ns=T0, rate=20.0, count=n)))


def _decode(msg: Message, encoding: str) -> ExportTraceServiceRequest:
    if encoding == "otlp_json":
        return parse_otlp_json(msg.value)
    return ExportTraceServiceRequest.FromString(msg.value)


def _span_trace_ids(req: ExportTraceServiceRequest) -> list[str]:
    return [
        s.trace_id.hex() for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans
    ]


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_keyed_one_message_per_trace_with_hex_trace_id_key(encoding: str) -> None:
    traces = {t.trace_id_hex: t for t in _traces()}
    msgs = list(to_messages(traces.values(), Framing(encoding=encoding)))
    assert len(msgs) == len(traces)
    for msg in msgs:
        assert msg.key is not None and len(msg.key) == 32
        trace = traces[msg.key.decode()]
        assert msg.due_ns == max(s.end_ns for s in trace.spans)
        ids = _span_trace_ids(_decode(msg, encoding))
        assert ids == [trace.trace_id_hex] * len(trace.spans)
    assert [m.due_ns for m in msgs] == sorted(m.due_ns for m in msgs)


def test_split_sends_a_share_of_traces_in_two_parts_covering_all_spans() -> None:
    traces = _traces(200)
    msgs = list(to_messages(traces, Framing(split_share=0.5, split_delay_s=1.0)))
    per_trace = Counter(m.key for m in msgs)
    split = [k for k, n in per_trace.items() if n == 2]
    assert set(per_trace.values()) == {1, 2}
    assert 60 < len(split) < 140
    spans = Counter(m.key for m in msgs for _ in range(m.span_count))
    assert all(spans[t.trace_id_hex.encode()] == len(t.spans) for t in traces)
    assert [m.due_ns for m in msgs] == sorted(m.due_ns for m in msgs)


def test_split_parts_are_nonempty_and_the_root_comes_last() -> None:
    trace = _traces(1)[0]
    for seed in range(20):
        first, second = split_spans(trace.spans, random.Random(seed))
        assert first and second and len(first) + len(second) == len(trace.spans)
        assert any(not s.parent_span_id for s in second)
        assert max(s.end_ns for s in first) <= min(s.end_ns for s in second)


def test_batches_pack_n_traces_per_message_without_key() -> None:
    traces = _traces(25)
    msgs = list(to_messages(traces, Framing(batch_traces=10)))
    assert [m.key for m in msgs] == [None, None, None]
    assert [len(m.trace_ids) for m in msgs] == [10, 10, 5]
    got = Counter(t for m in msgs for t in _span_trace_ids(_decode(m, "otlp_proto")))
    assert got == Counter({t.trace_id_hex: len(t.spans) for t in traces})
