"""Incident records: the message on the alert topic and the ``spanstream_incidents`` row (pure).

A record is published at each change the grouper reports (opened, updated,
resolved), keyed by ``incident_id``, beside the alert messages on the alert
topic; ``kind: "incident"`` tells it from an alert (schema
``schemas/alerts/incident.v1.json``).

>>> from pipeline.incidents.grouping import Incident
>>> from pipeline.incidents.rootcause import Candidate
>>> inc = Incident("ab" * 8, 0, 60 * 10**9, 1, {"a" * 16: True}, {"frontend": 0, "checkout": 60})
>>> cand = Candidate("payment", "Charge", 1.0, "payment Charge: self time 8.0x baseline")
>>> r = IncidentRecord(inc, "opened", 120 * 10**9, (cand,), ())
>>> r.summary.split("; ")  # doctest: +NORMALIZE_WHITESPACE
['incident abababababababab: 1 alert on frontend, checkout',
 'root cause payment Charge: self time 8.0x baseline']
>>> validate_incident(r.to_message())
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.alerts import iso
from pipeline.incidents.attributes import Named, named_line
from pipeline.incidents.grouping import Incident
from pipeline.incidents.rootcause import Candidate

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "alerts" / "incident.v1.json"
INCIDENTS_TABLE = "spanstream_incidents"
NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class IncidentRecord:
    """One incident state: what goes to the topic and to ``spanstream_incidents``."""

    incident: Incident
    status: str
    updated_ns: int
    candidates: tuple[Candidate, ...]
    attributes: tuple[Named, ...]

    @property
    def summary(self) -> str:
        """One line: how many alerts on which services, the top candidate and its evidence."""
        inc = self.incident
        n = len(inc.alerts)
        line = f"incident {inc.incident_id}: {n} alert{'s' * (n != 1)} on {', '.join(inc.services)}"
        if self.candidates:
            line += f"; root cause {self.candidates[0].evidence}"
        if self.attributes:
            line += f"; {named_line(self.attributes)}"
        if self.status == "resolved":
            line = f"resolved: {line}"
        return line

    def to_message(self) -> dict[str, Any]:
        """The JSON incident record (schema ``schemas/alerts/incident.v1.json``)."""
        inc = self.incident
        return {
            "kind": "incident",
            "schema_version": 1,
            "incident_id": inc.incident_id,
            "version": max(inc.version, 1),
            "status": self.status,
            "opened_at": iso(inc.opened_ns),
            "updated_at": iso(self.updated_ns),
            "services": list(inc.services),
            "alert_ids": list(inc.alerts),
            "root_causes": [
                {
                    "service": c.service,
                    "operation": c.operation,
                    "score": max(c.score, 0.0),
                    "evidence": c.evidence,
                }
                for c in self.candidates
            ],
            "attributes": [
                {
                    "key": n.key,
                    "value": n.value,
                    "share": round(n.share, 4),
                    "normal_share": round(n.normal_share, 4),
                }
                for n in self.attributes
            ],
            "summary": self.summary,
        }


def incident_columns(records: Sequence[IncidentRecord]) -> dict[str, list[Any]]:
    """``spanstream_incidents`` columns: one row per incident record."""
    return {
        "IncidentId": [r.incident.incident_id for r in records],
        "Version": [max(r.incident.version, 1) for r in records],
        "Status": [r.status for r in records],
        "OpenedAt": [r.incident.opened_ns // NS_PER_MS for r in records],
        "UpdatedAt": [r.updated_ns // NS_PER_MS for r in records],
        "Services": [list(r.incident.services) for r in records],
        "AlertIds": [list(r.incident.alerts) for r in records],
        "RootServices": [[c.service for c in r.candidates] for r in records],
        "RootOperations": [[c.operation for c in r.candidates] for r in records],
        "RootScores": [[float(c.score) for c in r.candidates] for r in records],
        "RootEvidence": [[c.evidence for c in r.candidates] for r in records],
        "Attributes": [{n.key: n.value for n in r.attributes} for r in records],
        "Summary": [r.summary for r in records],
    }


@cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def validate_incident(message: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``message`` breaks the incident schema."""
    _validator().validate(message)
