"""Faults on one instance or one version, saturation, and how faults propagate to callers."""

from __future__ import annotations

import statistics

import pytest

from pipeline.errors import ConfigError
from pipeline.generate.anomalies import Anomaly, AnomalySet, parse_anomaly
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.generate.topology import SERVICES, node_of
from pipeline.generate.traces import GenSpan, Trace

NS = 10**9
T0 = 1_714_521_600 * NS
CHARGE = "oteldemo.PaymentService/Charge"


def _stream(*anomalies: str, seed: int = 5, duration: float = 60.0) -> list[Trace]:
    spec = StreamSpec(
        seed=seed,
        start_ns=T0,
        rate=40.0,
        duration_s=duration,
        amplitude=0.0,
        mean_spans=1,
        anomalies=tuple(parse_anomaly(a) for a in anomalies),
    )
    return list(generate_traces(spec))


def _spans(traces: list[Trace], service: str, name: str) -> list[tuple[Trace, GenSpan]]:
    return [(t, s) for t in traces for s in t.spans if s.service == service and s.name == name]


def _ms(span: GenSpan) -> float:
    return (span.end_ns - span.start_ns) / 1e6


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "saturation:service=checkout,instance=checkout-66a1-2,start=1,duration=2",
            Anomaly("saturation", 1.0, 2.0, "checkout", factor=6.0, rate=0.1,
                    instance="checkout-66a1-2"),
        ),
        (
            "error_burst:service=cart,version=1.10.0,start=0,duration=5,rate=0.4",
            Anomaly("error_burst", 0.0, 5.0, "cart", rate=0.4, version="1.10.0"),
        ),
    ],
)  # fmt: skip
def test_parse_targeted_faults(spec: str, expected: Anomaly) -> None:
    assert parse_anomaly(spec) == expected


def test_saturation_rate_is_checked() -> None:
    with pytest.raises(ConfigError, match="rate must be within"):
        parse_anomaly("saturation:start=0,duration=5,rate=3")


@pytest.mark.parametrize(
    ("anomaly", "pod", "hit"),
    [
        (Anomaly("latency_spike", 0, 1, "cart", instance="cart-5d4b-1"), "cart-5d4b-1", True),
        (Anomaly("latency_spike", 0, 1, "cart", instance="cart-5d4b-1"), "cart-5d4b-2", False),
        (Anomaly("latency_spike", 0, 1, "cart", instance=node_of("cart-5d4b-3")), "cart-5d4b-3",
         True),
        (Anomaly("latency_spike", 0, 1, "cart", version="1.10.0"), "cart-5d4b-4", True),
        (Anomaly("latency_spike", 0, 1, "cart", version="1.10.0"), "cart-5d4b-1", False),
    ],
)  # fmt: skip
def test_instance_and_version_narrow_the_fault(anomaly: Anomaly, pod: str, hit: bool) -> None:
    assert anomaly.matches("cart", "DEL", pod) is hit


def test_saturation_ramps_up_over_the_first_half() -> None:
    faults = AnomalySet([Anomaly("saturation", 0, 100, "cart", factor=11.0, rate=0.2)], 0)
    assert faults.latency_factor("cart", "x", 25 * NS) == pytest.approx(6.0)
    assert faults.latency_factor("cart", "x", 75 * NS) == pytest.approx(11.0)
    assert faults.error_rate("cart", "x", 25 * NS, 0.01) == pytest.approx(0.1)


def test_resources_name_pod_node_and_version() -> None:
    for trace in _stream(duration=2.0):
        for service, res in trace.resources.items():
            pod = str(res["k8s.pod.name"])
            assert pod in SERVICES[service].hosts
            assert res["host.name"] == node_of(pod)
            assert res["service.version"] == SERVICES[service].version_of(pod)


def test_instance_fault_slows_only_that_pod_and_its_callers_inherit_it() -> None:
    pod = "payment-84c2-3"
    traces = _stream(f"latency_spike:service=payment,instance={pod},start=0,duration=60,factor=10")
    charge = _spans(traces, "payment", CHARGE)
    on_pod = [_ms(s) for t, s in charge if t.resources["payment"]["k8s.pod.name"] == pod]
    others = [_ms(s) for t, s in charge if t.resources["payment"]["k8s.pod.name"] != pod]
    assert statistics.median(on_pod) > 5 * statistics.median(others)
    place = _spans(traces, "checkout", "oteldemo.CheckoutService/PlaceOrder")
    slow = [_ms(s) for t, s in place if t.resources["payment"]["k8s.pod.name"] == pod]
    fast = [_ms(s) for t, s in place if t.resources["payment"]["k8s.pod.name"] != pod]
    added = statistics.median(on_pod) - statistics.median(others)
    assert statistics.median(slow) - statistics.median(fast) == pytest.approx(added, rel=0.5)


def test_version_errors_fail_callers_or_are_retried() -> None:
    traces = _stream("error_burst:service=payment,version=1.3.0,start=0,duration=60,rate=1.0")
    canary = [t for t in traces if t.resources.get("payment", {}).get("service.version") == "1.3.0"]
    stable = [t for t in traces if t.resources.get("payment", {}).get("service.version") == "1.2.7"]
    assert canary and stable
    assert all(s.is_error for t in canary for _, s in _spans([t], "payment", CHARGE))
    stable_charges = [s for _, s in _spans(stable, "payment", CHARGE)]
    assert sum(s.is_error for s in stable_charges) / len(stable_charges) < 0.1
    place = [s for _, s in _spans(canary, "checkout", "oteldemo.CheckoutService/PlaceOrder")]
    assert sum(s.is_error for s in place) / len(place) > 0.8
    retried = [t for t in canary if len(_spans([t], "payment", CHARGE)) == 2]
    assert len(retried) / len(canary) == pytest.approx(0.3, abs=0.12)


def test_the_label_names_instance_version_and_window() -> None:
    label = parse_anomaly(
        "saturation:service=cart,instance=cart-5d4b-2,start=10,duration=5,factor=4,rate=0.2"
    ).label(T0)
    assert label["instance"] == "cart-5d4b-2" and label["version"] is None
    assert (label["start_ns"], label["end_ns"]) == (T0 + 10 * NS, T0 + 15 * NS)
    assert (label["factor"], label["rate"]) == (4.0, 0.2)
