"""SLO burn alerts: episodes per (SLO, severity) and their messages on the alert topic.

An episode opens at the first evaluated window where a severity fires; each further
firing window republishes the same ``alert_id`` with the next ``version``; the first
window where no rule of that severity fires publishes ``status: resolved`` and closes
it. ``alert_id`` hashes the SLO, the severity and the onset window, so a replay gives
the same ids. Messages follow ``schemas/alerts/alert.v1.json`` with ``kind:
"slo_burn"``: ``severity`` is ``critical`` for a page, ``warning`` for a ticket;
``operation`` lists the SLO's operations (``*`` for all); ``metrics`` give each rule
window's burn rate against the factor of the rule that fired.

>>> episodes = {}
>>> first = advance(episodes, "pay", "page", True, 600 * 10**9)
>>> first == (slo_alert_id("pay", "page", 600 * 10**9), 1, "firing")
True
>>> advance(episodes, "pay", "page", True, 660 * 10**9)[1:]
(2, 'firing')
>>> advance(episodes, "pay", "page", False, 720 * 10**9)[1:], episodes
((3, 'resolved'), {})
>>> advance(episodes, "pay", "ticket", False, 720 * 10**9) is None
True
"""

from __future__ import annotations

import hashlib
from typing import Any

from pipeline.alerts import iso
from pipeline.slo.burn import Burn
from pipeline.slo.spec import DEFAULT_BURN_ALERTS, format_duration

SEVERITIES = ("page", "ticket")
#: The alert schema's severity for each burn alert severity.
ALERT_SEVERITY = {"page": "critical", "ticket": "warning"}


def slo_alert_id(slo: str, severity: str, onset_start_ns: int) -> str:
    """Stable 16-hex-char id of an SLO burn episode."""
    raw = f"slo\x00{slo}\x00{severity}\x00{onset_start_ns}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def advance(
    episodes: dict[str, list[Any]], slo: str, severity: str, firing: bool, window_start_ns: int
) -> tuple[str, int, str] | None:
    """Move the severity's episode by one evaluated window: ``(alert_id, version, status)``
    to publish, or None. ``episodes`` maps severity to ``[alert_id, onset_ns, version]``."""
    episode = episodes.get(severity)
    if episode is None and not firing:
        return None
    if episode is None:
        episode = episodes[severity] = [
            slo_alert_id(slo, severity, window_start_ns),
            window_start_ns,
            0,
        ]
    episode[2] += 1
    if not firing:
        del episodes[severity]
        return episode[0], episode[2], "resolved"
    return episode[0], episode[2], "firing"


def message(
    burn: Burn, severity: str, alert: tuple[str, int, str], onset_ns: int, exemplars: list[str]
) -> dict[str, Any]:
    """The alert-topic message of one episode step."""
    slo = burn.slo
    alert_id, version, status = alert
    rule = burn.triggered.get(severity) or _first_rule(slo.burn_alerts, severity)
    rates = {format_duration(s): round(r, 6) for s, r in burn.rates.items()}
    shown = (rule.long_window_seconds, rule.short_window_seconds)
    what = "burning" if status == "firing" else "back under its burn-rate alert"
    summary = (
        f"SLO {slo.name} ({slo.service}, {slo.sli} {slo.objective:g}%) {what}: "
        + ", ".join(f"{format_duration(s)} {burn.rates[s]:.3g}x" for s in shown)
        + f" (alert above {rule.factor:g}x), budget remaining {burn.budget_remaining:.1%}"
    )
    return {
        "schema_version": 1,
        "kind": "slo_burn",
        "alert_id": alert_id,
        "version": version,
        "status": status,
        "service": slo.service,
        "operation": ",".join(slo.operations) or "*",
        "window_start": iso(burn.window_start_ns),
        "window_end": iso(burn.window_end_ns),
        "onset_window_start": iso(onset_ns),
        "metrics": [
            {
                "name": f"burn_rate_{format_duration(s)}",
                "observed": burn.rates[s],
                "expected": rule.factor,
            }
            for s in shown
        ],
        "score": 1.0 if status == "firing" else 0.0,
        "severity": ALERT_SEVERITY[severity],
        "detector": "slo_burn",
        "exemplar_trace_ids": [e for e in exemplars if _is_trace_id(e)][:10],
        "summary": summary,
        "created_at": iso(burn.window_end_ns),
        "slo": slo.name,
        "burn_severity": severity,
        "budget_remaining": round(burn.budget_remaining, 6),
        "burn_rates": rates,
    }


def _first_rule(rules: Any, severity: str) -> Any:
    for rule in rules:
        if rule.severity == severity:
            return rule
    return DEFAULT_BURN_ALERTS[0]


def _is_trace_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)
