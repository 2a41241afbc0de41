"""Volume reduction: per-service deltas, the log line, and the meter's interval and metrics."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from pipeline.clock import ManualClock
from pipeline.ingest.volume import VolumeMeter, volume_delta, volume_line
from pipeline.otlp.decode import Decoded
from pipeline.sampling.buffer import Cause, DecidedTrace
from pipeline.sampling.counters import SamplingStats, ServiceVolume
from pipeline.sampling.policy import Decision
from tests.unit.sampling.spans import span


@pytest.mark.parametrize(
    ("now", "before", "expected"),
    [
        ({}, {}, {}),
        ({"a": ServiceVolume(3, 30, 1, 10)}, {}, {"a": ServiceVolume(3, 30, 1, 10)}),
        ({"a": ServiceVolume(3, 30, 1, 10)}, {"a": ServiceVolume(3, 30, 1, 10)}, {}),
        (
            {"a": ServiceVolume(9, 90, 2, 20), "b": ServiceVolume(1, 5, 0, 0)},
            {"a": ServiceVolume(3, 30, 1, 10), "b": ServiceVolume(1, 5, 0, 0)},
            {"a": ServiceVolume(6, 60, 1, 10)},
        ),
    ],
)
def test_volume_delta(
    now: dict[str, ServiceVolume],
    before: dict[str, ServiceVolume],
    expected: dict[str, ServiceVolume],
) -> None:
    assert volume_delta(now, before) == expected


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        ({}, "volume in 30s: no spans"),
        (
            {"api": ServiceVolume(200, 50_000, 10, 2_600)},
            "volume in 30s: api spans 200->10 (5.0%) bytes 50.0kB->2.6kB (5.2%)",
        ),
        (
            {"z": ServiceVolume(1, 10, 1, 10), "a": ServiceVolume(4, 3_000_000, 0, 0)},
            "volume in 30s: a spans 4->0 (0.0%) bytes 3.0MB->0B (0.0%);"
            " z spans 1->1 (100.0%) bytes 10B->10B (100.0%)",
        ),
        (  # kept now, arrived in an earlier interval: no division by zero
            {"late": ServiceVolume(0, 0, 2, 400)},
            "volume in 30s: late spans 0->2 (-) bytes 0B->400B (-)",
        ),
    ],
)
def test_volume_line(delta: dict[str, ServiceVolume], expected: str) -> None:
    assert volume_line(delta, 30.0) == expected


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_meter_reports_each_interval_only_what_is_new() -> None:
    clock, stats = ManualClock(), SamplingStats()
    meter = VolumeMeter(stats, clock, interval=30.0)
    stats.record_in([span(service="meter-a")] * 4)
    stats.record_kept([span(service="meter-a")])
    assert meter.tick() is None
    clock.advance(30.0)
    first = meter.tick()
    assert first is not None and "meter-a spans 4->1 (25.0%)" in first
    clock.advance(10.0)
    assert meter.tick() is None
    clock.advance(20.0)
    assert meter.tick() == "volume in 30s: no spans"


def test_meter_exports_kept_bytes_once() -> None:
    stats = SamplingStats()
    meter = VolumeMeter(stats, ManualClock())
    before = sample("spanstream_bytes_kept_total", service="meter-b")
    stats.record_kept([span(service="meter-b")] * 2)
    meter.tick()
    meter.tick()
    kept = stats.services["meter-b"].bytes_kept
    assert kept > 0
    assert sample("spanstream_bytes_kept_total", service="meter-b") - before == kept


def test_payload_bytes_are_split_by_span_share() -> None:
    meter = VolumeMeter(SamplingStats(), ManualClock())
    before = {s: sample("spanstream_bytes_in_total", service=s) for s in ("share-a", "share-b")}
    spans = [span(service="share-a")] * 3 + [span(service="share-b")]
    meter.record_in(Decoded(spans, "otlp_proto", 1000))
    unexported = {s: sample("spanstream_bytes_in_total", service=s) for s in before}
    assert unexported == before  # counted per record, exported per tick
    meter.tick()
    after = {s: sample("spanstream_bytes_in_total", service=s) for s in before}
    assert after["share-a"] - before["share-a"] == pytest.approx(750)
    assert after["share-b"] - before["share-b"] == pytest.approx(250)


def _decided(trace_id: str, services: list[str], kept: bool) -> DecidedTrace:
    heads = tuple(span(trace=trace_id, service=s) for s in services)
    decision = Decision.KEEP if kept else Decision.DROP
    policy = "errors" if kept else None
    return DecidedTrace(trace_id, decision, policy, heads, frozenset(), Cause.TIMER)


@pytest.mark.parametrize("batches", [[[0, 1, 2]], [[0], [1, 2]], [[2, 0], [], [1]]])
def test_decided_spans_are_counted_per_service_however_batched(batches: list[list[int]]) -> None:
    traces = [
        _decided("t0", ["dec-a", "dec-b", "dec-a"], kept=False),
        _decided("t1", ["dec-b", "dec-c"], kept=True),
        _decided("t2", ["dec-c", "dec-a", "dec-c", "dec-c"], kept=False),
    ]
    services = ("dec-a", "dec-b", "dec-c")
    before = {s: sample("spanstream_spans_sampled_out_total", service=s) for s in services}
    meter = VolumeMeter(SamplingStats(), ManualClock())
    for batch in batches:
        meter.record_decided([traces[i] for i in batch])
    for s in services:
        spans = [(t, h) for t in traces for h in t.heads if h.service_name == s]
        dropped = sum(1 for t, _ in spans if not t.kept)
        kept = len(spans) - dropped
        out = sample("spanstream_spans_sampled_out_total", service=s) - before[s]
        assert out == dropped
        assert sample("spanstream_sampling_keep_ratio", service=s) == kept / len(spans)
