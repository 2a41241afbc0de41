"""An alert message -> an Alertmanager v2 postable alert (``POST /api/v2/alerts``).

Labels identify the alert (Alertmanager groups, routes, inhibits and deduplicates by
them); annotations describe it. ``alert_id`` is a label, so each episode is its own
Alertmanager alert and a duplicate post of the same message is the same alert.

* labels: ``alertname`` (``SpanstreamAnomaly``, or ``SpanstreamSLOBurn`` for
  ``kind: slo_burn``), ``service``, ``operation``, ``severity``, ``alert_id``, and
  ``slo`` and ``incident_id`` when the message has them; empty values are left out
  (Alertmanager treats an empty label as absent);
* annotations: ``summary``, ``description`` (status, version, window, detector),
  ``observed`` (each metric observed vs expected), ``exemplar_trace_ids``,
  ``trace_url`` (the first exemplar through the link template), and for SLO burn
  alerts ``budget_remaining`` and ``burn_rates``;
* ``startsAt``: the episode's onset window start; ``endsAt``: for a firing alert
  ``resend_seconds`` x 4 from now (the forwarder re-posts firing alerts every
  ``resend_seconds``, as Prometheus does), for a resolved one its ``created_at``
  (never in the future, never before ``startsAt``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from pipeline.settings.delivery import TRACE_ID_PLACEHOLDER

ALERTNAMES = {"anomaly": "SpanstreamAnomaly", "slo_burn": "SpanstreamSLOBurn"}
#: Resends a firing alert's ``endsAt`` lies ahead, so a late refresh does not resolve it.
ENDS_AFTER_RESENDS = 4
#: Optional message fields carried as labels when present.
OPTIONAL_LABELS = ("slo", "incident_id")


def alertname(message: dict[str, Any]) -> str:
    """The ``alertname`` label of a message; an absent ``kind`` is an anomaly alert.

    >>> alertname({}), alertname({"kind": "slo_burn"}), alertname({"kind": "later"})
    ('SpanstreamAnomaly', 'SpanstreamSLOBurn', 'SpanstreamLater')
    """
    kind = str(message.get("kind") or "anomaly")
    return ALERTNAMES.get(kind, "Spanstream" + "".join(p.title() for p in kind.split("_")))


def alert_labels(message: dict[str, Any]) -> dict[str, str]:
    """The label set of a message (see the module docstring)."""
    found = {
        "alertname": alertname(message),
        "service": message.get("service"),
        "operation": message.get("operation"),
        "severity": message.get("severity"),
        "alert_id": message.get("alert_id"),
        **{name: message.get(name) for name in OPTIONAL_LABELS},
    }
    return {name: str(value) for name, value in found.items() if value not in (None, "")}


def trace_link(template: str, trace_id: str) -> str:
    """``template`` with ``{trace_id}`` replaced (URL-quoted); "" without a template.

    >>> trace_link("https://grafana/explore?traceId={trace_id}", "ab12")
    'https://grafana/explore?traceId=ab12'
    >>> trace_link("", "ab12")
    ''
    """
    if not template:
        return ""
    return template.replace(TRACE_ID_PLACEHOLDER, quote(trace_id, safe=""))


def alert_annotations(message: dict[str, Any], link_template: str) -> dict[str, str]:
    """The annotations of a message (see the module docstring); empty ones left out."""
    exemplars = [str(t) for t in message.get("exemplar_trace_ids") or []]
    found = {
        "summary": message.get("summary"),
        "description": _description(message),
        "observed": "; ".join(
            f"{m['name']} {m['observed']:.4g} vs expected {m['expected']:.4g}"
            for m in message.get("metrics") or []
        ),
        "exemplar_trace_ids": " ".join(exemplars),
        "trace_url": trace_link(link_template, exemplars[0]) if exemplars else "",
        "budget_remaining": _render(message.get("budget_remaining")),
        "burn_rates": _render(message.get("burn_rates")),
    }
    return {name: str(value) for name, value in found.items() if value not in (None, "")}


def postable(
    message: dict[str, Any], *, now: datetime, resend_seconds: float, link_template: str = ""
) -> dict[str, Any]:
    """The Alertmanager v2 postable alert of a (schema-valid) message at wall time ``now``."""
    starts = min(parse_time(message.get("onset_window_start") or message["window_start"]), now)
    if message["status"] == "resolved":
        ends = min(max(parse_time(message["created_at"]), starts), now)
    else:
        ends = now + timedelta(seconds=resend_seconds * ENDS_AFTER_RESENDS)
    return {
        "labels": alert_labels(message),
        "annotations": alert_annotations(message, link_template),
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
    }


def ended_now(message: dict[str, Any], now: datetime) -> dict[str, Any]:
    """``message`` as resolved at ``now``: ends the Alertmanager alert of its labels."""
    return {**message, "status": "resolved", "created_at": rfc3339(now)}


def superseded(previous: dict[str, Any] | None, message: dict[str, Any]) -> dict[str, Any] | None:
    """``previous`` (the alert's last firing message) if ``message`` changes its labels.

    >>> old = {"alert_id": "a", "service": "s", "severity": "warning"}
    >>> superseded(old, {**old, "severity": "critical"}) == old
    True
    >>> superseded(old, dict(old)), superseded(None, old)
    (None, None)
    """
    if previous is None or alert_labels(previous) == alert_labels(message):
        return None
    return previous


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as an aware UTC datetime (``ValueError`` if it is none).

    >>> parse_time("2026-12-04T09:00:00.250Z").isoformat()
    '2026-12-04T09:00:00.250000+00:00'
    """
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r}: no time zone")
    return parsed.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """UTC with milliseconds, as Alertmanager's API takes it.

    >>> rfc3339(datetime(2026, 12, 4, 9, 0, 0, 250_000, tzinfo=UTC))
    '2026-12-04T09:00:00.250Z'
    >>> rfc3339(datetime(1, 1, 1, tzinfo=UTC))
    '0001-01-01T00:00:00.000Z'
    """
    moment = moment.astimezone(UTC)
    # %Y is not zero-padded on every platform (year 1 -> "1"): the year is formatted here.
    clock = moment.strftime("-%m-%dT%H:%M:%S.")
    return f"{moment.year:04d}{clock}{moment.microsecond // 1000:03d}Z"


def _description(message: dict[str, Any]) -> str:
    parts = [
        f"{message.get('status')} v{message.get('version')}",
        f"window {message.get('window_start')} .. {message.get('window_end')}",
    ]
    if message.get("detector"):
        parts.append(f"detector {message['detector']} score {message.get('score')}")
    return ", ".join(parts)


def _render(value: Any) -> str:
    """A free-form optional field as one line: ``k=v`` pairs for an object.

    >>> _render({"1h": 14.4, "5m": 15.2}), _render(0.25), _render(None), _render([1, 2])
    ('1h=14.4 5m=15.2', '0.25', '', '1 2')
    """
    if value is None:
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k}={_render(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(_render(v) for v in value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)
