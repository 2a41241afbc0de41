"""Scoring ``evaluate --rca`` outcomes: ownership windows, misses, false incidents."""

from __future__ import annotations

from pipeline.evaluate.rca import IncidentOutcome, Outcome
from pipeline.evaluate.rca_report import format_table, score
from pipeline.evaluate.rca_scenarios import Fault, FaultSet
from pipeline.generate.anomalies import Anomaly
from pipeline.incidents.attributes import Named
from pipeline.incidents.rootcause import Candidate
from pipeline.incidents.signals import OpKey

NS = 1_000_000_000
W = 15 * NS


def _fault(service: str, start: float, op: str | None = None, pod: str | None = None) -> Fault:
    a = Anomaly("latency_spike", start, 60.0, service, instance=pod)
    return Fault(a, op, ("k8s.pod.name", pod) if pod else None)


def _incident(iid: str, opened_s: float, *services: str, named: str = "") -> IncidentOutcome:
    out = IncidentOutcome(iid, int(opened_s * NS), 2)
    out.ranking = [Candidate(s, "op", 1.0, "") for s in services]
    out.operations = [OpKey(s, "op") for s in services]
    out.named = [Named("k8s.pod.name", named, 1.0, 0.25)] if named else []
    return out


def test_scores() -> None:
    faults = FaultSet(
        (
            _fault("payment", 1000, "op"),
            _fault("cart", 2000, pod="cart-1"),
            _fault("shipping", 3000),
        ),
        4000.0,
        900.0,
    )
    outcome = Outcome(faults, W)
    for inc in (
        _incident("a", 1000 - 2 * 15, "payment"),  # opened just before the fault: still its
        _incident("b", 2015, "checkout", "cart", named="cart-1"),
        _incident("c", 2500, "frontend"),  # outside every fault: false
    ):
        outcome.incidents[inc.incident_id] = inc
    outcome.alert_onsets = [("payment", "op", 1000 * NS), ("x", "y", 1015 * NS)]
    s = score(1, outcome, 0, gap_windows=3)
    assert (s.faults, s.no_incident, s.false_incidents) == (3, 1, 1)
    assert s.exactly_one == 2 / 3 and s.alerts_per_fault == 2 / 3
    assert (s.service_top1, s.service_top3) == (1 / 3, 2 / 3)
    assert (s.op_top1, s.attribute_named) == (1.0, 1.0)
    assert s.false_per_day == 1 / (4000 / 86400)
    table = format_table([s], markdown=True)
    assert table.startswith("| seed | faults |") and "| 1 | 3 |" in table
