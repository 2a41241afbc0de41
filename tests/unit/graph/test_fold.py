"""fold (the ingest thread's one pass) files exactly what derive + add_graph file."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.enrich import Enricher
from pipeline.generate.messages import Framing, to_messages
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.graph.aggregate import GraphAggregator, GraphCounts
from pipeline.graph.derive import GraphSpan, SpanLike, derive, stored_peer
from pipeline.graph.edges import GraphWindow
from pipeline.graph.fold import fold
from pipeline.graph.read import read_peer
from pipeline.otlp import decode_message

S = 1_000_000_000

_ids = st.sampled_from(["a", "b", "c", "d", "e", "f", "g"])
_span = st.builds(
    GraphSpan,
    span_id=_ids,
    parent_span_id=st.one_of(st.just(""), _ids, st.just("zz")),
    service_name=st.sampled_from(["front", "cart", "pay"]),
    operation=st.sampled_from(["GET", "POST"]),
    kind=st.integers(0, 6),
    timestamp_ns=st.integers(-5, 120).map(lambda t: t * S // 4),
    duration_ns=st.integers(-3 * S, 40 * S),
    is_error=st.booleans(),
    peer=st.sampled_from(["", "pg", "stripe", "redis"]),
    database=st.booleans(),
)


def _both(
    traces: Sequence[Sequence[SpanLike]], peer: object = stored_peer, **kw: int
) -> tuple[tuple[list[GraphWindow], GraphCounts], tuple[list[GraphWindow], GraphCounts]]:
    old, new = GraphAggregator(60, **kw), GraphAggregator(60, **kw)
    for spans in traces:
        old.add_graph(derive(spans, old.max_spans, peer))  # type: ignore[arg-type]
        if peer is stored_peer:
            new.add_spans(spans)  # type: ignore[arg-type]
        else:
            new.add_trace(spans)  # type: ignore[arg-type]
    return (old.drain(), old.counts), (new.drain(), new.counts)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_span, max_size=12), max_size=6), st.integers(1, 3), st.integers(1, 13))
def test_fold_files_what_derive_files_on_adversarial_traces(
    traces: list[list[GraphSpan]], max_peers: int, max_spans: int
) -> None:
    old, new = _both(traces, max_peers=max_peers, max_spans_per_trace=max_spans)
    assert new == old


def test_fold_files_what_derive_files_on_generated_heads() -> None:
    spec = StreamSpec(seed=5, start_ns=1_700_000_000 * S, rate=200.0, count=300)
    enricher = Enricher()
    traces = [
        decode_message(m.value, None, max_bytes=1 << 24, enricher=enricher).spans
        for m in to_messages(generate_traces(spec), Framing("otlp_proto"))
    ]
    old, new = _both(traces, read_peer, max_peers=4)
    assert new == old
    assert sum(len(w.edges) for w in new[0]) > 10
    assert new[1].traces == len(traces)


def test_fold_counts_unpaired_servers_as_derive_does() -> None:
    client = GraphSpan("c", "", "front", "GET", 3, 0, 10, False)
    servers = [GraphSpan(i, "c", "back", "GET", 2, t, 5, False) for i, t in (("x", 2), ("y", 1))]
    orphan = GraphSpan("o", "gone", "back", "GET", 2, 0, 5, False)
    spans = [client, *servers, orphan]
    folded = fold(spans, 10, stored_peer, 60 * S, {}, {})
    assert folded.unpaired_server == derive(spans).unpaired_server == 2
    assert folded.calls == [tuple(c) for c in derive(spans).calls]
