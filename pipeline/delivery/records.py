"""A record of the alert topic: the alert it holds, or why it holds none.

The topic is writable by others, so a record is untrusted: it must be JSON (at most
:data:`~pipeline.checked.MAX_STATE_BYTES`) and an alert by
``schemas/alerts/alert.v1.json``, or an incident record by
``schemas/alerts/incident.v1.json`` (a :class:`Skipped`: receivers get the alerts,
which carry their ``incident_id``, not the incident records). Anything else is a
:class:`Rejected` with a reason (the dead-letter header and metric label), never an
exception.

>>> parse_alert(b"not json").reason
'not_json'
>>> parse_alert(b'{"alert_id": "x"}').reason
'not_alert'
>>> parse_alert(None).reason
'not_json'
>>> import json
>>> ok = {"schema_version": 1, "alert_id": "00ff00ff00ff00ff", "version": 1,
...       "status": "firing", "service": "s", "operation": "o", "metrics": [],
...       "window_start": "2026-12-04T09:00:00Z", "window_end": "2026-12-04T09:01:00Z",
...       "score": 0.9, "severity": "critical", "detector": "robust",
...       "exemplar_trace_ids": [], "summary": "s o", "created_at": "2026-12-04T09:01:00Z"}
>>> parse_alert(json.dumps(ok).encode()) == ok
True
>>> parse_alert(json.dumps({**ok, "created_at": "yesterday"}).encode())
Rejected(reason='not_alert', detail="created_at: not an RFC 3339 time: 'yesterday'")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Record(Protocol):
    """What the forwarder reads of a Kafka record (a confluent-kafka ``Message``, polled
    without error, always has these)."""

    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


@dataclass(frozen=True)
class Skipped:
    """A valid record that is not delivered: ``kind`` names what it is (``incident``)."""

    kind: str


@dataclass(frozen=True)
class Rejected:
    """A record that is no alert: ``reason`` is a fixed label, ``detail`` says what broke."""

    reason: str
    detail: str


def parse_alert(value: bytes | None) -> dict[str, Any] | Skipped | Rejected:
    """The alert in a record's value, :class:`Skipped` for an incident record, or
    :class:`Rejected` (``not_json``, ``not_alert``)."""
    import jsonschema

    from pipeline.alerts import validate_message
    from pipeline.checked import StateError, parse_json

    try:
        message = parse_json(value or b"")
    except StateError as exc:
        return Rejected("not_json", exc.detail)
    if not isinstance(message, dict):
        return Rejected("not_alert", f"a JSON object expected, got {type(message).__name__}")
    if message.get("kind") == "incident":
        return _incident(message)
    try:
        validate_message(message)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        return Rejected("not_alert", f"{where}: {exc.message}"[:500])
    return _bad_time(message) or message


def _incident(message: dict[str, Any]) -> Skipped | Rejected:
    import jsonschema

    from pipeline.incidents.records import validate_incident

    try:
        validate_incident(message)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        return Rejected("not_alert", f"incident record: {where}: {exc.message}"[:500])
    return Skipped("incident")


#: Times the mapping reads; JSON Schema's ``format: date-time`` is not enforced by jsonschema.
TIME_FIELDS = ("window_start", "window_end", "onset_window_start", "created_at")


def _bad_time(message: dict[str, Any]) -> Rejected | None:
    from pipeline.delivery.mapping import parse_time

    for name in TIME_FIELDS:
        if name in message:
            try:
                parse_time(message[name])
            except (TypeError, ValueError, OverflowError):
                return Rejected("not_alert", f"{name}: not an RFC 3339 time: {message[name]!r:.60}")
    return None
