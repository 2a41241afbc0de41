"""Manifest lines written and read back, and the per-window summary."""

from __future__ import annotations

from pathlib import Path

from pipeline.generate.manifest import ManifestSpan, ManifestWriter, read_manifest, summarize
from pipeline.generate.schedule import StreamSpec, generate_traces

NS = 10**9


def test_write_and_read_back(tmp_path: Path) -> None:
    traces = list(generate_traces(StreamSpec(seed=4, start_ns=0, rate=5.0, count=3)))
    path = tmp_path / "m.jsonl"
    with path.open("w") as out:
        w = ManifestWriter(out)
        w.anomalies([{"kind": "latency_spike", "service": "payment", "start_ns": 1, "end_ns": 2}])
        for trace in traces:
            w.trace(trace)
        w.message(traces[0].trace_id_hex.encode(), 2, 17, [traces[0].trace_id_hex], 9)
        w.summary(traces=3)
    m = read_manifest(path)
    assert list(m.traces) == [t.trace_id_hex for t in traces]
    first = m.traces[traces[0].trace_id_hex]
    assert [s.span_id for s in first] == [s.span_id.hex() for s in traces[0].spans]
    assert first[0].duration_ns == traces[0].spans[0].end_ns - traces[0].spans[0].start_ns
    assert m.locations(traces[0].trace_id_hex) == [(2, 17)]
    assert m.locations(traces[1].trace_id_hex) == []
    assert m.anomalies[0]["service"] == "payment" and m.summary == {"traces": 3}
    assert len(m.spans()) == sum(len(t.spans) for t in traces)


def test_summarize_counts_errors_and_durations_per_window() -> None:
    spans = [
        ManifestSpan("t", "a", "cart", "GET /x/1", 5 * NS, 10, False),
        ManifestSpan("t", "b", "cart", "GET /x/2", 6 * NS, 30, True),
        ManifestSpan("t", "c", "cart", "GET /x/1", 12 * NS, 5, False),
    ]
    counts = summarize(spans, window_s=10, op=lambda s: s.span_name.rsplit("/", 1)[0])
    first = counts[(0, "cart", "GET /x")]
    assert (first.count, first.errors, first.max_duration_ns) == (2, 1, 30)
    assert first.mean_duration_ns == 20
    assert counts[(10 * NS, "cart", "GET /x")].count == 1
