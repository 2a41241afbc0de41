"""Alerts: the message published when a window scores anomalous, and its episode tracking.

An *episode* is a run of anomalous windows of one (service, operation). Its
``alert_id`` is a hash of the series and the onset window start, so a replay
of the same data produces the same id. Within an episode the alert is
published at onset, again when its severity rises, and once more when the
series is back to normal (``status="resolved"``, after ``resolve_after`` normal windows
in a row, so one quiet window inside an incident does not split it in two); every
anomalous window still bumps ``version`` and is written to the anomalies table, so the topic carries
one message per change, not one per window.

>>> t = EpisodeTracker()
>>> w = WindowRef("checkout", "POST /cart", 0, 60_000_000_000, ("ab" * 16,))
>>> a = t.observe(w, Finding(0.93, "critical", (("p99_ms", 850.0, 120.0),), "red"))
>>> a.status, a.version, a.publish, a.summary
('firing', 1, True, 'checkout POST /cart: p99_ms 850 vs expected 120 (score 0.93, critical)')
>>> def normal(i: int) -> WindowRef:
...     return WindowRef("checkout", "POST /cart", i * 60_000_000_000, (i + 1) * 60_000_000_000)
>>> [t.observe(normal(1), None), t.observe(normal(2), None)]  # quiet, not yet resolved
[None, None]
>>> t.observe(normal(3), None).status  # the third normal window in a row resolves it
'resolved'
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.checked import StateError, count, items, number, record

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "alerts" / "alert.v1.json"
SEVERITY_RANK = {"warning": 1, "critical": 2}


@dataclass(frozen=True)
class WindowRef:
    """The closed window an alert is about, with exemplar trace ids that were kept."""

    service: str
    operation: str
    window_start_ns: int
    window_end_ns: int
    exemplars: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """What the detector said about an anomalous window."""

    score: float
    severity: str
    metrics: tuple[tuple[str, float, float], ...]
    detector: str


@dataclass(frozen=True)
class Alert:
    """One alert state: what goes to the topic (if ``publish``) and the anomalies table."""

    alert_id: str
    version: int
    status: str
    window: WindowRef
    onset_start_ns: int
    finding: Finding
    summary: str
    publish: bool
    #: The incident the alert belongs to (``pipeline.incidents``), once grouped.
    incident_id: str | None = None

    def to_message(self, created_at_ns: int | None = None) -> dict[str, Any]:
        """The JSON alert (schema ``schemas/alerts/alert.v1.json``)."""
        created = self.window.window_end_ns if created_at_ns is None else created_at_ns
        message: dict[str, Any] = {
            "schema_version": 1,
            "alert_id": self.alert_id,
            "version": self.version,
            "status": self.status,
            "service": self.window.service,
            "operation": self.window.operation,
            "window_start": iso(self.window.window_start_ns),
            "window_end": iso(self.window.window_end_ns),
            "onset_window_start": iso(self.onset_start_ns),
            "metrics": [
                {"name": n, "observed": float(o), "expected": float(e)}
                for n, o, e in self.finding.metrics
            ],
            "score": round(min(max(self.finding.score, 0.0), 1.0), 4),
            "severity": self.finding.severity,
            "detector": self.finding.detector,
            "exemplar_trace_ids": list(self.window.exemplars),
            "summary": self.summary,
            "created_at": iso(created),
        }
        if self.incident_id is not None:
            message["incident_id"] = self.incident_id
        return message


@dataclass
class _Episode:
    alert_id: str
    onset_start_ns: int
    version: int
    severity: str
    last: Finding
    exemplars: list[str] = field(default_factory=list)
    #: Normal windows in a row since the last anomalous one.
    quiet: int = 0


def iso(ns: int) -> str:
    """RFC 3339 UTC timestamp with milliseconds.

    >>> iso(0)
    '1970-01-01T00:00:00.000Z'
    """
    dt = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def alert_id(service: str, operation: str, onset_start_ns: int) -> str:
    """Stable 16-hex-char id of an episode."""
    raw = f"{service}\x00{operation}\x00{onset_start_ns}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def summarize(service: str, operation: str, finding: Finding) -> str:
    """One human line: the most deviating metrics with observed vs expected."""
    parts = [f"{n} {o:.4g} vs expected {e:.4g}" for n, o, e in finding.metrics[:3]]
    what = ", ".join(parts) if parts else "unusual window"
    return f"{service} {operation}: {what} (score {finding.score:.2f}, {finding.severity})"


class EpisodeTracker:
    """Turns per-window findings of one or many series into alert states.

    State is a plain dict of episodes keyed by (service, operation); it is
    JSON-safe through :meth:`to_dict` so it can live next to the window state
    and survive restarts.
    """

    def __init__(self, max_exemplars: int = 5, resolve_after: int = 3) -> None:
        self._open: dict[tuple[str, str], _Episode] = {}
        self._max_exemplars = max_exemplars
        # One normal window inside an incident is common (a spike's noisy middle); resolving
        # on it would end the alert and open a new one a window later.
        self.resolve_after = resolve_after

    def observe(self, window: WindowRef, finding: Finding | None) -> Alert | None:
        """Feed one closed window; ``finding`` is None when the window is normal."""
        key = (window.service, window.operation)
        episode = self._open.get(key)
        if finding is None:
            if episode is None:
                return None
            episode.quiet += 1
            return self._resolve(key, episode, window) if self._quiet_enough(episode) else None
        if episode is None:
            episode = _Episode(
                alert_id(window.service, window.operation, window.window_start_ns),
                window.window_start_ns,
                0,
                finding.severity,
                finding,
            )
            self._open[key] = episode
            publish = True
        else:
            publish = SEVERITY_RANK[finding.severity] > SEVERITY_RANK[episode.severity]
            episode.severity = max(
                episode.severity, finding.severity, key=SEVERITY_RANK.__getitem__
            )
        episode.version += 1
        episode.quiet = 0
        episode.last = finding
        episode.exemplars = _merge_exemplars(
            episode.exemplars, window.exemplars, self._max_exemplars
        )
        return self._alert(episode, window, finding, "firing", publish)

    def _quiet_enough(self, episode: _Episode) -> bool:
        return episode.quiet >= self.resolve_after

    def _resolve(self, key: tuple[str, str], episode: _Episode, window: WindowRef) -> Alert:
        del self._open[key]
        episode.version += 1
        return self._alert(episode, window, episode.last, "resolved", True)

    def _alert(
        self, ep: _Episode, window: WindowRef, finding: Finding, status: str, publish: bool
    ) -> Alert:
        shown = WindowRef(
            window.service,
            window.operation,
            window.window_start_ns,
            window.window_end_ns,
            tuple(ep.exemplars),
        )
        summary = summarize(window.service, window.operation, finding)
        if status == "resolved":
            summary = f"resolved: {summary}"
        return Alert(
            ep.alert_id, ep.version, status, shown, ep.onset_start_ns, finding, summary, publish
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state."""
        return {"|".join(k): asdict(v) for k, v in self._open.items()}

    @classmethod
    def from_dict(cls, data: object, max_exemplars: int = 5) -> EpisodeTracker:
        """Inverse of :meth:`to_dict`; untrusted input (a table changelog): every field is
        checked and anything else raises ``StateError`` (``pipeline.checked``)."""
        tracker = cls(max_exemplars)
        if not isinstance(data, dict) or len(data) > _MAX_EPISODES:
            raise StateError("schema", f"episodes: an object of at most {_MAX_EPISODES}")
        for key, raw in data.items():
            service, sep, operation = key.partition("|")
            if not sep:
                raise StateError("schema", "episodes: a key without '|'")
            tracker._open[(service, operation)] = _episode(raw, max_exemplars)
        return tracker


#: Open episodes one stored tracker may hold (the worker keeps one tracker per series).
_MAX_EPISODES = 64
_EPISODE_KEYS = ["alert_id", "onset_start_ns", "version", "severity", "last", "exemplars", "quiet"]


def _episode(value: object, max_exemplars: int) -> _Episode:
    raw = record(value, "episode", _EPISODE_KEYS)
    alert = raw["alert_id"]
    if not isinstance(alert, str) or not re.fullmatch("[0-9a-f]{16}", alert):
        raise StateError("schema", "episode.alert_id: 16 hex digits expected")
    exemplars = raw["exemplars"]
    if not isinstance(exemplars, list | tuple) or len(exemplars) > max_exemplars:
        raise StateError("schema", f"episode.exemplars: a list of at most {max_exemplars}")
    if not all(_short_str(e, 64) for e in exemplars):
        raise StateError("schema", f"episode.exemplars: at most {max_exemplars} short strings")
    return _Episode(
        alert,
        count(raw["onset_start_ns"], "episode.onset_start_ns", 2**63 - 1),
        count(raw["version"], "episode.version"),
        _severity(raw["severity"]),
        _finding(raw["last"]),
        list(exemplars),
        count(raw["quiet"], "episode.quiet"),
    )


def _finding(value: object) -> Finding:
    last = record(value, "episode.last", ["score", "severity", "metrics", "detector"])
    metrics = last["metrics"]
    if not isinstance(metrics, list | tuple) or len(metrics) > _MAX_METRICS:
        raise StateError("schema", f"episode.last.metrics: a list of at most {_MAX_METRICS}")
    parsed = []
    for m in metrics:
        name, observed, expected = items(m, "episode.last.metrics[]", 3)
        if not _short_str(name, 64):
            raise StateError("schema", "episode.last.metrics[]: a short metric name expected")
        where = "episode.last.metrics[]"
        parsed.append((name, number(observed, where), number(expected, where)))
    detector = last["detector"]
    if not _short_str(detector, 64):
        raise StateError("schema", "episode.last.detector: a short string expected")
    score = number(last["score"], "episode.last.score", 0.0, 1.0)
    return Finding(score, _severity(last["severity"]), tuple(parsed), detector)


_MAX_METRICS = 32


def _severity(value: object) -> str:
    if value not in SEVERITY_RANK:
        raise StateError("schema", f"severity: one of {sorted(SEVERITY_RANK)} expected")
    return str(value)


def _short_str(value: object, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit


def _merge_exemplars(old: list[str], new: tuple[str, ...], limit: int) -> list[str]:
    merged = list(old)
    for trace_id in new:
        if trace_id not in merged:
            merged.append(trace_id)
    return merged[:limit]


@cache
def _validator() -> Any:
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


def validate_message(message: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``message`` breaks the alert schema."""
    _validator().validate(message)
