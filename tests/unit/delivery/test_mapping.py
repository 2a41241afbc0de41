"""Alert message -> Alertmanager v2 postable alert: labels, annotations, times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.delivery.mapping import alert_annotations, alert_labels, postable
from tests.unit.delivery.messages import TRACE, alert

NOW = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
ANOMALY_LABELS = {
    "alertname": "SpanstreamAnomaly",
    "service": "checkout",
    "operation": "POST /cart",
    "severity": "critical",
    "alert_id": "00ff00ff00ff00ff",
}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (alert(), ANOMALY_LABELS),
        (alert(kind="anomaly"), ANOMALY_LABELS),
        (
            alert(kind="slo_burn", slo="checkout-availability", severity="page"),
            {
                **ANOMALY_LABELS,
                "alertname": "SpanstreamSLOBurn",
                "slo": "checkout-availability",
                "severity": "page",
            },
        ),
        (alert(incident_id="inc-7"), {**ANOMALY_LABELS, "incident_id": "inc-7"}),
        # An empty label is an absent one to Alertmanager: left out.
        (
            alert(operation="", incident_id=""),
            {k: v for k, v in ANOMALY_LABELS.items() if k != "operation"},
        ),
    ],
    ids=["anomaly", "explicit-kind", "slo-burn", "incident", "empty-values"],
)
def test_labels(message: dict[str, Any], expected: dict[str, str]) -> None:
    assert alert_labels(message) == expected


@pytest.mark.parametrize(
    ("message", "template", "expected"),
    [
        (
            alert(),
            "https://grafana/explore?traceId={trace_id}",
            {
                "summary": "checkout POST /cart: p99_ms 850 vs expected 120",
                "observed": "p99_ms 850 vs expected 120",
                "exemplar_trace_ids": f"{TRACE} {'cd' * 16}",
                "trace_url": f"https://grafana/explore?traceId={TRACE}",
            },
        ),
        (alert(exemplar_trace_ids=[]), "https://g/{trace_id}", {"exemplar_trace_ids": None}),
        (alert(), "", {"trace_url": None}),
        (
            alert(
                kind="slo_burn",
                metrics=[
                    {"name": "error_ratio", "observed": 0.0144, "expected": 0.001},
                    {"name": "p95_ms", "observed": 310.5, "expected": 300.0},
                ],
                budget_remaining=0.42,
                burn_rates={"1h": 14.6, "5m": 15.0},
            ),
            "",
            {
                "observed": "error_ratio 0.0144 vs expected 0.001; p95_ms 310.5 vs expected 300",
                "budget_remaining": "0.42",
                "burn_rates": "1h=14.6 5m=15",
            },
        ),
    ],
    ids=["anomaly-with-link", "no-exemplars", "no-template", "slo-burn"],
)
def test_annotations(message: dict[str, Any], template: str, expected: dict[str, Any]) -> None:
    """Each expected key has that value; None means the annotation is absent."""
    found = alert_annotations(message, template)
    assert {k: found.get(k) for k in expected} == expected
    assert "firing v2" in found["description"]


@pytest.mark.parametrize(
    ("message", "starts", "ends"),
    [
        # Firing: from the onset, ending 4 resends (60 s) from now unless re-posted.
        (alert(), "2026-12-04T09:04:00.000Z", "2026-12-04T10:04:00.000Z"),
        # No onset field: the window start.
        (alert(onset_window_start=None), "2026-12-04T09:05:00.000Z", "2026-12-04T10:04:00.000Z"),
        # Resolved: ends at created_at, in the past, so Alertmanager resolves it now.
        (alert(status="resolved"), "2026-12-04T09:04:00.000Z", "2026-12-04T09:06:30.000Z"),
        # Clock skew: times in the future are clamped to now; endsAt never before startsAt.
        (
            alert(
                onset_window_start="2026-12-04T11:00:00Z",
                status="resolved",
                created_at="2026-12-04T12:00:00Z",
            ),
            "2026-12-04T10:00:00.000Z",
            "2026-12-04T10:00:00.000Z",
        ),
        (
            alert(status="resolved", created_at="2026-12-04T08:00:00Z"),
            "2026-12-04T09:04:00.000Z",
            "2026-12-04T09:04:00.000Z",
        ),
    ],
    ids=["firing", "no-onset", "resolved", "future-times", "resolved-before-onset"],
)
def test_times(message: dict[str, Any], starts: str, ends: str) -> None:
    body = postable(message, now=NOW, resend_seconds=60)
    assert (body["startsAt"], body["endsAt"]) == (starts, ends)
    assert body["labels"]["alert_id"] == message["alert_id"]


def test_the_same_message_maps_to_the_same_alert() -> None:
    """A duplicate post is the same Alertmanager alert (same labels: same fingerprint)."""
    one = postable(alert(), now=NOW, resend_seconds=60)
    again = postable(alert(), now=NOW.replace(minute=5), resend_seconds=60)
    assert one["labels"] == again["labels"]
    assert one["annotations"] == again["annotations"]


def test_a_trace_link_quotes_what_it_inserts() -> None:
    found = alert_annotations(alert(exemplar_trace_ids=["a/b?c"]), "https://g/t/{trace_id}")
    assert found["trace_url"] == "https://g/t/a%2Fb%3Fc"
