"""The labelled fault set: every service as root cause, targeted faults named by attribute."""

from __future__ import annotations

import pytest

from pipeline.evaluate.rca_scenarios import WARMUP_WINDOWS, fault_set, pipeline_operation
from pipeline.generate.topology import OPS, SERVICES


@pytest.mark.parametrize("seed", [1, 2, 7])
def test_every_service_is_a_root_cause_and_faults_do_not_overlap(seed: int) -> None:
    faults = fault_set(seed, window_s=15)
    services = [f.anomaly.service for f in faults.faults]
    assert sorted(set(services)) == sorted(SERVICES) and len(services) == 3 * len(SERVICES)
    kinds = {f.anomaly.kind for f in faults.faults}
    assert {"latency_spike", "error_burst"} <= kinds
    starts = [f.anomaly.start_s for f in faults.faults]
    assert starts[0] == WARMUP_WINDOWS * 15
    for a, b in zip(faults.faults, faults.faults[1:], strict=False):
        assert a.anomaly.start_s + a.anomaly.duration_s + 16 * 15 <= b.anomaly.start_s
    for f in faults.faults:
        if f.attribute is not None:
            key, value = f.attribute
            assert (key, value) in {("k8s.pod.name", f.anomaly.instance),
                                    ("service.version", f.anomaly.version)}  # fmt: skip


def test_seeds_differ() -> None:
    assert fault_set(1, 15).faults != fault_set(2, 15).faults


@pytest.mark.parametrize(
    ("key", "operation"),
    [
        ("checkout:orders", "SELECT"),
        ("payment:Charge", "oteldemo.PaymentService/Charge"),
        ("frontend:orders", "GET /users/{user_id}/orders/{order_id}"),
        ("catalog:product", "GET /products/{product_id}"),
    ],
)
def test_the_labelled_operation_is_the_one_the_pipeline_derives(key: str, operation: str) -> None:
    assert pipeline_operation(OPS[key]) == operation
