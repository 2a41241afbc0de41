"""Group alerts into incidents: one incident per fault, not one page per operation (pure).

The rule. A new alert episode (an ``alert_id`` not seen before) joins the open
incident that (1) had an alert fire within ``gap_windows`` windows before this
alert's window, and (2) holds the alert's service, or a service at most
``max_hops`` calls away from it in the service graph (edges taken either way:
a slow callee and its callers are one fault). If several qualify, the oldest
wins; if none does, the alert opens a new incident. Later versions of the same
alert stay in its incident. An incident resolves once every alert in it has
resolved and ``gap_windows`` more closes (calls of :meth:`IncidentGrouper.observe`)
brought no new alert: windows of different series can close in different closes
(a backlog closes one series' windows far ahead of another's), so the callers'
alerts of a fault may come a few closes after the callee's have resolved.

An incident is *confirmed* once it has seen ``min_firings`` firing alert
windows (two alerts, or one alert firing in two windows): only then is it
opened on the topic (a lone one-window alert, the detectors' usual false
alarm, pages nobody and leaves no incident record). Its alerts carry the
incident id from the start.

``incident_id`` is a hash of the first alert's id, itself a hash of its series
and onset window: a replay of the same data gives the same incident ids.

>>> g = IncidentGrouper(window_ns=60)
>>> edges = {("frontend", "checkout"), ("checkout", "payment")}
>>> a = AlertEvent("a1", "payment", "Charge", "firing", 0)
>>> b = AlertEvent("b1", "frontend", "POST /", "firing", 60)
>>> [(c.status, len(c.incident.alerts)) for c in g.observe([a, b], edges)]
[('opened', 2)]
>>> g.incident_of("b1") == g.incident_of("a1") == incident_id("a1")
True
>>> changes = g.observe([AlertEvent("a1", "payment", "Charge", "resolved", 240),
...                      AlertEvent("b1", "frontend", "POST /", "resolved", 240)], edges)
>>> changes, [[c.status for c in g.observe([], edges)] for _ in range(3)], g.incident_of("a1")
([], [[], [], ['resolved']], None)
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.checked import StateError, count, flag, record, text

#: (client service, server service) pairs seen calling each other.
Edges = Collection[tuple[str, str]]
#: Open incidents one grouper keeps at most; beyond, the oldest is resolved.
MAX_OPEN = 256
#: Alerts one incident lists at most (later ones still join, unlisted).
MAX_ALERTS = 256


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """What grouping reads of an alert state (``pipeline.alerts.Alert``)."""

    alert_id: str
    service: str
    operation: str
    status: str
    window_start_ns: int


@dataclass
class Incident:
    """One open incident: its alerts (id -> firing?), services and when each first fired."""

    incident_id: str
    opened_ns: int
    last_fired_ns: int
    version: int = 0
    alerts: dict[str, bool] = field(default_factory=dict)
    #: service -> start of the first window it alerted in.
    services: dict[str, int] = field(default_factory=dict)
    #: (service, operation) of every alert, first firing first.
    operations: list[tuple[str, str]] = field(default_factory=list)
    #: Firing alert windows seen (confirms the incident at ``min_firings``).
    firings: int = 0
    confirmed: bool = False
    #: Closes since every alert of it resolved (resolves it past ``gap_windows``).
    quiet_closes: int = 0

    @property
    def firing(self) -> bool:
        return any(self.alerts.values())


@dataclass(frozen=True, slots=True)
class Change:
    """An incident opened, updated (a new alert or service joined) or resolved."""

    status: str
    incident: Incident


def incident_id(first_alert_id: str) -> str:
    """Stable 16-hex-char id of an incident, from its first alert's id."""
    return hashlib.sha256(f"incident\x00{first_alert_id}".encode()).hexdigest()[:16]


def _neighbours(edges: Edges) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for client, server in edges:
        out.setdefault(client, set()).add(server)
        out.setdefault(server, set()).add(client)
    return out


def _near(service: str, targets: Iterable[str], graph: dict[str, set[str]], hops: int) -> bool:
    """Whether a service of ``targets`` is at most ``hops`` edges from ``service``."""
    wanted = set(targets)
    seen, frontier = {service}, deque([(service, 0)])
    while frontier:
        node, depth = frontier.popleft()
        if node in wanted:
            return True
        if depth < hops:
            for nxt in graph.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append((nxt, depth + 1))
    return False


class IncidentGrouper:
    """Assigns alerts to incidents by the rule in the module docstring."""

    def __init__(
        self, window_ns: int, gap_windows: int = 3, max_hops: int = 2, min_firings: int = 2
    ) -> None:
        self.window_ns = window_ns
        self.gap_windows = gap_windows
        self.max_hops = max_hops
        self.min_firings = min_firings
        self.open: dict[str, Incident] = {}
        self._of: dict[str, str] = {}

    def incident_of(self, alert_id: str) -> str | None:
        """The open incident an alert belongs to, if any."""
        return self._of.get(alert_id)

    def observe(self, alerts: Sequence[AlertEvent], edges: Edges) -> list[Change]:
        """Feed one close's alert states; returns each changed incident once, in order."""
        graph = _neighbours(edges)
        changed: dict[str, str] = {}
        for alert in alerts:
            known = self._of.get(alert.alert_id)
            if known is not None:
                incident = self.open[known]
                self._continue(incident, alert)
            elif alert.status == "firing":
                incident = self._match(alert, graph) or self._open_new(alert)
                self._join(incident, alert)
                changed.setdefault(incident.incident_id, "updated")
            else:
                continue  # the resolution of an alert whose incident is gone
            if not incident.confirmed and incident.firings >= self.min_firings:
                incident.confirmed = True
                changed[incident.incident_id] = "opened"
        out = [
            Change(status, self.open[iid])
            for iid, status in changed.items()
            if self.open[iid].confirmed
        ]
        out += self._resolve_done(changed)
        for change in out:
            change.incident.version += 1
        return out

    def _continue(self, incident: Incident, alert: AlertEvent) -> None:
        incident.alerts[alert.alert_id] = alert.status == "firing"
        if alert.status == "firing":
            incident.firings += 1
            incident.last_fired_ns = max(incident.last_fired_ns, alert.window_start_ns)

    def _match(self, alert: AlertEvent, graph: dict[str, set[str]]) -> Incident | None:
        horizon = alert.window_start_ns - self.gap_windows * self.window_ns
        for incident in sorted(self.open.values(), key=lambda i: (i.opened_ns, i.incident_id)):
            if incident.last_fired_ns >= horizon and _near(
                alert.service, incident.services, graph, self.max_hops
            ):
                return incident
        return None

    def _open_new(self, alert: AlertEvent) -> Incident:
        if len(self.open) >= MAX_OPEN:
            oldest = min(self.open.values(), key=lambda i: i.opened_ns)
            self._drop(oldest)
        incident = Incident(
            incident_id(alert.alert_id), alert.window_start_ns, alert.window_start_ns
        )
        self.open[incident.incident_id] = incident
        return incident

    def _join(self, incident: Incident, alert: AlertEvent) -> None:
        if len(incident.alerts) < MAX_ALERTS:
            incident.alerts[alert.alert_id] = True
            incident.operations.append((alert.service, alert.operation))
        incident.services.setdefault(alert.service, alert.window_start_ns)
        incident.firings += 1
        incident.last_fired_ns = max(incident.last_fired_ns, alert.window_start_ns)
        self._of[alert.alert_id] = incident.incident_id

    def _resolve_done(self, changed: dict[str, str]) -> list[Change]:
        for incident in self.open.values():
            incident.quiet_closes = 0 if incident.firing else incident.quiet_closes + 1
        done = [i for i in self.open.values() if i.quiet_closes > self.gap_windows]
        for incident in done:
            changed.pop(incident.incident_id, None)
            self._drop(incident)
        return [Change("resolved", i) for i in done if i.confirmed]

    def _drop(self, incident: Incident) -> None:
        del self.open[incident.incident_id]
        for alert in incident.alerts:
            self._of.pop(alert, None)

    # -- state (a Faust table value: untrusted, checked) ------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state."""
        return {
            iid: {
                "opened_ns": i.opened_ns,
                "last_fired_ns": i.last_fired_ns,
                "version": i.version,
                "alerts": i.alerts,
                "services": i.services,
                "operations": [list(op) for op in i.operations],
                "firings": i.firings,
                "confirmed": i.confirmed,
                "quiet_closes": i.quiet_closes,
            }
            for iid, i in self.open.items()
        }

    def load(self, data: object) -> None:
        """Replace the state by :meth:`to_dict`'s output; raises ``StateError`` if malformed."""
        if not isinstance(data, dict) or len(data) > MAX_OPEN:
            raise StateError("schema", f"incidents: an object of at most {MAX_OPEN}")
        incidents = [_incident(iid, raw) for iid, raw in data.items()]
        self.open = {i.incident_id: i for i in incidents}
        self._of = {a: i.incident_id for i in incidents for a in i.alerts}


def _incident(iid: object, raw: object) -> Incident:
    if not isinstance(iid, str) or len(iid) != 16:
        raise StateError("schema", "incident id: 16 characters expected")
    data = record(
        raw,
        "incident",
        ["opened_ns", "last_fired_ns", "version", "alerts", "services", "operations", "firings",
         "confirmed", "quiet_closes"],
    )  # fmt: skip
    alerts, services, operations = data["alerts"], data["services"], data["operations"]
    if not isinstance(alerts, dict) or len(alerts) > MAX_ALERTS:
        raise StateError("schema", f"incident.alerts: an object of at most {MAX_ALERTS}")
    if not all(isinstance(v, bool) for v in alerts.values()):
        raise StateError("schema", "incident.alerts: booleans expected")
    if not isinstance(services, dict) or len(services) > MAX_ALERTS:
        raise StateError("schema", "incident.services: an object expected")
    if not isinstance(operations, list) or len(operations) > MAX_ALERTS:
        raise StateError("schema", "incident.operations: a list expected")
    ops = [
        (text(op[0], "incident.operations[]", 512), text(op[1], "incident.operations[]", 512))
        for op in operations
        if isinstance(op, list) and len(op) == 2
    ]
    if len(ops) != len(operations):
        raise StateError("schema", "incident.operations[]: [service, operation] pairs expected")
    return Incident(
        iid,
        count(data["opened_ns"], "incident.opened_ns", 2**63 - 1),
        count(data["last_fired_ns"], "incident.last_fired_ns", 2**63 - 1),
        count(data["version"], "incident.version"),
        {text(k, "incident.alerts", 64): v for k, v in alerts.items()},
        {text(k, "incident.services", 512): count(v, "incident.services", 2**63 - 1)
         for k, v in services.items()},
        ops,
        count(data["firings"], "incident.firings"),
        flag(data["confirmed"], "incident.confirmed"),
        count(data["quiet_closes"], "incident.quiet_closes"),
    )  # fmt: skip
