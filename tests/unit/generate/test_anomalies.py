"""Anomaly specs and their effect on generated traces, inside and outside their window."""

from __future__ import annotations

import statistics

import pytest

from pipeline.errors import ConfigError
from pipeline.generate.anomalies import Anomaly, parse_anomaly
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.generate.traces import Trace

NS = 10**9
T0 = 1_714_521_600 * NS


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "latency_spike:service=payment,start=300,duration=120,factor=8",
            Anomaly("latency_spike", 300.0, 120.0, "payment", None, factor=8.0),
        ),
        (
            "error_burst:service=cart,op=HGETALL,start=0,duration=5",
            Anomaly("error_burst", 0.0, 5.0, "cart", "HGETALL", rate=0.5),
        ),
        ("traffic_drop:start=1,duration=2", Anomaly("traffic_drop", 1.0, 2.0, factor=0.1)),
    ],
)
def test_parse(spec: str, expected: Anomaly) -> None:
    assert parse_anomaly(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("spike:start=1,duration=1", "kind must be one of"),
        ("latency_spike:duration=1", "start= is required"),
        ("latency_spike:start=1,duration=x", "is not a number"),
        ("error_burst:start=1,duration=1,rate=2", "rate must be within"),
        ("traffic_drop:start=1,duration=0", "duration > 0"),
    ],
)
def test_parse_rejects(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_anomaly(spec)


def test_label_has_absolute_window() -> None:
    label = parse_anomaly("latency_spike:service=payment,start=10,duration=5").label(T0)
    assert label["start_ns"] == T0 + 10 * NS and label["end_ns"] == T0 + 15 * NS
    assert label["kind"] == "latency_spike" and label["service"] == "payment"


def _stream(*anomalies: str, rate: float = 30.0, duration: float = 90.0) -> list[Trace]:
    spec = StreamSpec(
        seed=11,
        start_ns=T0,
        rate=rate,
        duration_s=duration,
        amplitude=0.0,
        anomalies=tuple(parse_anomaly(a) for a in anomalies),
    )
    return list(generate_traces(spec))


def _inside(trace: Trace) -> bool:
    return T0 + 30 * NS <= trace.start_ns < T0 + 60 * NS


def _payment_servers(traces: list[Trace]) -> list[tuple[bool, int, bool]]:
    return [
        (_inside(t), s.end_ns - s.start_ns, s.is_error)
        for t in traces
        for s in t.spans
        if s.service == "payment" and s.name == "oteldemo.PaymentService/Charge"
    ]


def test_latency_spike_slows_the_service_only_in_its_window() -> None:
    spans = _payment_servers(_stream("latency_spike:service=payment,start=30,duration=30,factor=8"))
    inside = statistics.median(d for i, d, _ in spans if i)
    outside = statistics.median(d for i, d, _ in spans if not i)
    assert inside > 5 * outside
    baseline = _payment_servers(_stream())
    assert statistics.median(d for i, d, _ in baseline if not i) == pytest.approx(outside, rel=0.3)


def test_error_burst_raises_errors_only_in_its_window() -> None:
    spans = _payment_servers(_stream("error_burst:service=payment,start=30,duration=30,rate=0.6"))
    inside = [e for i, _, e in spans if i]
    outside = [e for i, _, e in spans if not i]
    assert sum(inside) / len(inside) > 0.45
    assert sum(outside) / len(outside) < 0.1


def test_traffic_drop_thins_traces_only_in_its_window() -> None:
    traces = _stream("traffic_drop:start=30,duration=30,factor=0.1")
    inside = sum(_inside(t) for t in traces)
    before = sum(t.start_ns < T0 + 30 * NS for t in traces)
    assert before > 600
    assert inside < before * 0.2
