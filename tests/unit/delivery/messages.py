"""A valid alert message for the delivery tests, with changes (None removes a field)."""

from __future__ import annotations

from typing import Any

TRACE = "ab" * 16


def alert(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": 1,
        "alert_id": "00ff00ff00ff00ff",
        "version": 2,
        "status": "firing",
        "service": "checkout",
        "operation": "POST /cart",
        "window_start": "2026-12-04T09:05:00.000Z",
        "window_end": "2026-12-04T09:06:00.000Z",
        "onset_window_start": "2026-12-04T09:04:00.000Z",
        "metrics": [{"name": "p99_ms", "observed": 850.0, "expected": 120.0}],
        "score": 0.93,
        "severity": "critical",
        "detector": "robust",
        "exemplar_trace_ids": [TRACE, "cd" * 16],
        "summary": "checkout POST /cart: p99_ms 850 vs expected 120",
        "created_at": "2026-12-04T09:06:30.000Z",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def incident() -> dict[str, object]:
    """A valid incident record (``kind: incident``), as the window stage publishes one."""
    from pipeline.incidents.grouping import Incident
    from pipeline.incidents.records import IncidentRecord

    incident = Incident("ab" * 8, 0, 0, 1, {"cd" * 8: True}, {"shop": 0})
    return IncidentRecord(incident, "opened", 60_000_000_000, (), ()).to_message()
