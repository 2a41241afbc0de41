"""Trace synthesis: determinism, tree shape, timing, attributes, size."""

from __future__ import annotations

import random
import statistics

import pytest

from pipeline.generate.topology import KIND, SERVICES
from pipeline.generate.traces import Trace, TraceFactory

T0 = 1_714_521_600 * 10**9


def _traces(seed: int, n: int, **kw: object) -> list[Trace]:
    factory = TraceFactory(random.Random(seed), **kw)  # type: ignore[arg-type]
    return [factory.build(T0 + i * 10**8) for i in range(n)]


def _shape(trace: Trace) -> list[tuple[str, str, int, int, str]]:
    return [(s.span_id.hex(), s.name, s.start_ns, s.end_ns, s.service) for s in trace.spans]


def test_same_seed_same_traces_other_seed_different() -> None:
    a, b, c = _traces(5, 50), _traces(5, 50), _traces(6, 50)
    assert [_shape(t) for t in a] == [_shape(t) for t in b]
    assert [t.resources for t in a] == [t.resources for t in b]
    assert [_shape(t) for t in a] != [_shape(t) for t in c]


def test_one_root_and_every_parent_exists_in_the_trace() -> None:
    for trace in _traces(1, 300):
        ids = {s.span_id for s in trace.spans}
        assert len(ids) == len(trace.spans)
        roots = [s for s in trace.spans if not s.parent_span_id]
        assert len(roots) == 1 and roots[0].service == "frontend"
        assert all(s.parent_span_id in ids for s in trace.spans if s.parent_span_id)
        assert all(s.trace_id == trace.trace_id for s in trace.spans)


def test_children_lie_inside_their_parents() -> None:
    for trace in _traces(2, 300):
        by_id = {s.span_id: s for s in trace.spans}
        for span in trace.spans:
            assert span.end_ns > span.start_ns
            parent = by_id.get(span.parent_span_id)
            if parent is not None:
                assert parent.start_ns <= span.start_ns and span.end_ns <= parent.end_ns


def test_remote_calls_pair_a_client_span_with_the_callee_server_span() -> None:
    for trace in _traces(3, 100):
        by_id = {s.span_id: s for s in trace.spans}
        for span in trace.spans:
            parent = by_id.get(span.parent_span_id)
            if span.kind == KIND["server"] and parent is not None:
                assert parent.kind == KIND["client"]
                assert parent.service != span.service


def test_attributes_resources_and_kinds_look_real() -> None:
    spans = [s for t in _traces(4, 300) for s in t.spans]
    assert 9 <= statistics.mean(len(s.attributes) for s in spans) <= 11
    assert {s.kind for s in spans} == set(KIND.values())
    assert {s.service for s in spans} == set(SERVICES)
    assert len({s.name for s in spans if s.kind == KIND["server"]}) >= 10
    http = [s for s in spans if "http.route" in s.attributes]
    assert any(str(s.attributes["url.path"]).count("/") >= 4 for s in http)
    assert any("db.system" in s.attributes for s in spans)
    assert any("rpc.system" in s.attributes for s in spans)
    trace = _traces(4, 1)[0]
    for res in trace.resources.values():
        assert {"service.name", "service.version", "host.name", "deployment.environment"} <= set(
            res
        )


def test_errors_carry_status_and_exception_event() -> None:
    spans = [s for t in _traces(5, 400, base_error_rate=0.05) for s in t.spans]
    errors = [s for s in spans if s.is_error]
    assert errors
    for span in errors:
        assert span.status_message
        assert any(e.name == "exception" for e in span.events)
    server_5xx = [s for s in errors if s.attributes.get("http.response.status_code") == 500]
    assert server_5xx


def test_consumer_spans_link_to_their_producer() -> None:
    spans = [s for t in _traces(6, 200) for s in t.spans]
    consumers = [s for s in spans if s.kind == KIND["consumer"]]
    assert consumers
    assert all(s.links and s.links[0].span_id == s.parent_span_id for s in consumers)


@pytest.mark.parametrize("mean", [16, 20, 40])
def test_mean_trace_size_follows_the_setting(mean: int) -> None:
    sizes = [len(t.spans) for t in _traces(7, 400, mean_spans=mean)]
    assert abs(statistics.mean(sizes) - mean) / mean < 0.15
