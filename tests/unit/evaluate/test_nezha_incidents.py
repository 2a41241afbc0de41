"""Incidents and root cause of a Nezha replay, scored per fault on hand-computed cases."""

from __future__ import annotations

import pytest

from pipeline.evaluate.nezha_incidents import (
    IncidentState,
    format_incidents,
    latest,
    score_incidents,
)
from pipeline.evaluate.nezha_score import AlertState, ScoredFault

S = 1_000_000_000
W = 60 * S
HOUR = 3600 * S


def fault(service: str, at_s: int) -> ScoredFault:
    return ScoredFault(f"t{at_s}", service, "cpu", at_s * S, 0.0)


def alert(aid: str, service: str, onset_s: int, last_s: int | None = None) -> list[AlertState]:
    states = [AlertState(aid, service, "firing", onset_s * S, onset_s * S)]
    if last_s is not None:  # resolved 3 windows after its last anomalous window
        states.append(AlertState(aid, service, "resolved", last_s * S + 3 * W, onset_s * S))
    return states


def inc(
    iid: str,
    opened_s: int,
    services: str,
    alert_ids: str,
    roots: str,
    version: int = 1,
    updated_s: int = 0,
) -> IncidentState:
    return IncidentState(
        iid,
        version,
        "opened",
        opened_s * S,
        tuple(services.split()),
        tuple(alert_ids.split()),
        tuple(roots.split()),
        updated_s * S,
    )


# One fault on cart at 100 s; its range is [100, 340).
@pytest.mark.parametrize(
    ("alerts", "incidents", "row"),
    [
        # no alert, no incident
        ([], [], (False, 0, 0, None, None, None)),
        # cart and its caller alert, one incident, cart ranked first
        (alert("a", "cart", 120) + alert("b", "web", 120),
         [inc("i", 120, "cart web", "a b", "cart web")], (True, 2, 1, "i", "cart", 1)),
        # the incident ranks cart third
        (alert("a", "cart", 120), [inc("i", 120, "cart", "a", "web ad cart")],
         (True, 1, 1, "i", "web", 3)),
        # cart is no candidate of its incident
        (alert("a", "cart", 120), [inc("i", 120, "cart", "a", "web")],
         (True, 1, 1, "i", "web", None)),
        # a lone alert that never became an incident
        (alert("a", "cart", 120), [], (True, 1, 0, None, None, None)),
        # two incidents: cart's alerts in the second (opened later)
        (alert("a", "cart", 180) + alert("b", "web", 120),
         [inc("i1", 120, "web", "b", "web"), inc("i2", 180, "cart", "a", "cart")],
         (True, 2, 2, "i2", "cart", 1)),
        # an episode from before the range still open in it holds the fault
        (alert("a", "cart", 0, 180), [inc("i", 0, "cart", "a", "cart")],
         (True, 0, 0, "i", "cart", 1)),
        # an incident opened after the range does not count for the fault
        (alert("a", "cart", 400), [inc("i", 400, "cart", "a", "cart")],
         (False, 0, 0, None, None, None)),
        # the latest version of an incident is read
        (alert("a", "cart", 120),
         [inc("i", 120, "cart", "a", "web"), inc("i", 120, "cart", "a", "cart", version=2)],
         (True, 1, 1, "i", "cart", 1)),
        # ... as published by the range's end: a later fault chained in re-ranked it
        (alert("a", "cart", 120),
         [inc("i", 120, "cart", "a", "cart", 1, 180), inc("i", 120, "cart", "a", "web", 2, 900)],
         (True, 1, 1, "i", "cart", 1)),
        # ... or its first, when the first came after the range's end
        (alert("a", "cart", 120),
         [inc("i", 120, "cart", "a", "ad", 1, 400), inc("i", 120, "cart", "a", "cart", 2, 900)],
         (True, 1, 1, "i", "ad", None)),
    ],
)  # fmt: skip
def test_per_fault_row(
    alerts: list[AlertState], incidents: list[IncidentState], row: tuple[object, ...]
) -> None:
    report = score_incidents(
        [fault("cart", 100)], alerts, incidents, 0, HOUR, window_ns=W, fault_ns=120 * S
    )
    (r,) = report.rows
    assert (r.alerted, r.alerts, r.incidents, r.holding, r.top, r.rank) == row


def test_totals() -> None:
    faults = [fault("cart", 100), fault("ad", 1000), fault("pay", 2000)]
    alerts = (
        alert("a", "cart", 120)
        + alert("b", "web", 120)
        + alert("c", "ad", 1020)
        + alert("d", "web", 3000)  # outside every fault
        + alert("e", "web", 2040)  # in pay's range, pay not alerted
    )
    incidents = [
        inc("i1", 120, "cart web", "a b", "cart web"),
        inc("i2", 1020, "ad", "c", "frontend ad"),
        inc("i3", 2040, "web", "e", "web"),
        inc("i4", 3000, "web", "d", "web"),
    ]
    report = score_incidents(faults, alerts, incidents, 0, HOUR, window_ns=W, fault_ns=120 * S)
    assert [r.incidents for r in report.rows] == [1, 1, 1]
    assert report.exactly_one == 3
    assert (report.alerted, report.top1, report.top3) == (2, 1, 2)
    # i3 opened in pay's range without pay, i4 outside every range
    assert (report.incidents, report.other, report.other_per_hour) == (4, 2, 2.0)
    text = format_incidents(report)
    assert "faults with exactly one incident: 3/3" in text
    assert "top-1 1/2 = 0.50, top-3 2/2 = 1.00" in text
    assert "per fault: 1.33 alert onsets -> 1.00 incidents" in text
    assert "2 in 1.00 h = 2.0/h" in text
    md = format_incidents(report, markdown=True).splitlines()
    assert md[0].startswith("| # | service |") and md[5].startswith("| total |")


def test_format_without_faults() -> None:
    report = score_incidents([], [], [], 0, HOUR, window_ns=W, fault_ns=120 * S)
    assert "exactly one incident: 0/0" in format_incidents(report)


def test_latest_keeps_the_highest_version_in_opening_order() -> None:
    states = [inc("b", 60, "x", "1", "x"), inc("a", 120, "y", "2", "y", version=3),
              inc("a", 120, "y", "2", "", version=2)]  # fmt: skip
    assert [(i.incident_id, i.version) for i in latest(states)] == [("b", 1), ("a", 3)]
