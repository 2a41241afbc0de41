"""Incident settings: when alerts are one incident (docs/incidents.md)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings.env import enforce


@dataclass(frozen=True)
class IncidentOptions:
    """Alert grouping (environment variable and default)."""

    #: SPANSTREAM_INCIDENTS: group alerts into incidents and rank their root causes.
    incidents: bool = True
    #: SPANSTREAM_INCIDENT_GAP_WINDOWS: a new alert joins an incident that fired this recently.
    incident_gap_windows: int = 3
    #: SPANSTREAM_INCIDENT_MAX_HOPS: ... and holds a service at most this many calls away.
    incident_max_hops: int = 2
    #: SPANSTREAM_INCIDENT_MIN_FIRINGS: firing alert windows that open (publish) an incident.
    incident_min_firings: int = 2


def check(s: IncidentOptions) -> None:
    """Gaps and hops are not negative; an incident needs at least one firing."""
    enforce(
        s,
        [
            ("incident_gap_windows", s.incident_gap_windows >= 0, "must be >= 0"),
            ("incident_max_hops", s.incident_max_hops >= 0, "must be >= 0"),
            ("incident_min_firings", s.incident_min_firings >= 1, "must be >= 1"),
        ],
    )
