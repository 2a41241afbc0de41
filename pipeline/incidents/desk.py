"""The window stage's incident step: group a close's alerts, rank root causes, make records.

Plain code, no Faust or Kafka: :class:`IncidentDesk` takes the alerts one close
produced and the closed window starts, and returns the alerts tagged with their
``incident_id`` plus the incident records to publish. Root-cause signals come
from the service graph's recent windows (``graph``: anything with ``windows()``,
e.g. :class:`pipeline.graph.aggregate.GraphHistory`); without a graph the
ranking has nothing to read and incidents name no candidate. Attribute counts
come from ``attributes`` (a callable over kept spans, see
:mod:`pipeline.incidents.attributes`), if given.

Ranking waits for the graph. A window's graph data follows its traces' sampling
decisions and the graph flush, so it can come closes after the window closed (a
backlog, a busy machine). The baselines learn a closed window once a newer graph
window is in (the graph's *watermark* passed it), and only if it closed before every
open incident's first alert window. An incident ranked before the watermark passed
its last firing window is ranked again once it has: if the candidates changed, an
``updated`` record says so.

State (open incidents, per-operation baselines, pending windows and what each open
incident was last ranked on) is read from the state table
under :data:`STATE_KEY` at each close and written back at its end (the
``detectors`` table in the worker, whose writes are staged: a close that fails
leaves it as it was, so its retry groups the same alerts into the same records;
a changelog topic restores it after a restart). Read back it is untrusted: a
value that does not parse is counted and logged (``pipeline.rejections``) and
grouping starts over with no open incident.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.alerts import Alert
from pipeline.checked import StateError, int64, record, text
from pipeline.graph.edges import GraphWindow
from pipeline.incidents.attributes import Named, over_represented
from pipeline.incidents.grouping import MAX_OPEN, AlertEvent, Change, Incident, IncidentGrouper
from pipeline.incidents.records import IncidentRecord
from pipeline.incidents.rootcause import Baselines, Candidate, rank
from pipeline.incidents.signals import OpKey, OpStats, ops_of, service_edges
from pipeline.rejections import Rejections

log = logging.getLogger(__name__)

#: The state table key of the incident state.
STATE_KEY = "__incidents__"
STATE_VERSION = 3
#: The state keys of each version read (2: before ``ranked``; it loads as "none ranked").
STATE_KEYS = {
    2: ["v", "grouper", "baselines", "pending"],
    3: ["v", "grouper", "baselines", "pending", "ranked"],
}
#: Closed windows whose graph data is awaited before the baselines learn them (or not).
MAX_PENDING = 256
#: Windows an incident is ranked on at most (:meth:`IncidentDesk.span`).
RANK_WINDOWS = 5
STARTS_OVER = "incident grouping starts over"

#: (service, since ns, until ns) -> (attributes, abnormal?) of that service's kept spans.
AttributeSource = Callable[[str, int, int], Iterable[tuple[Mapping[str, object], bool]]]


class GraphSource(Protocol):
    """The service graph's recent windows (``GraphHistory`` is one)."""

    def windows(self) -> list[GraphWindow]: ...


@dataclass(frozen=True)
class IncidentConfig:
    """Grouping rule parameters (``docs/incidents.md``)."""

    gap_windows: int = 3
    max_hops: int = 2
    min_firings: int = 2


class IncidentDesk:
    """Groups alerts into incidents and ranks their root causes; see the module docstring."""

    def __init__(
        self,
        window_ns: int,
        graph: GraphSource | None = None,
        config: IncidentConfig | None = None,
        attributes: AttributeSource | None = None,
    ) -> None:
        self.window_ns = window_ns
        self.graph = graph
        self.config = config or IncidentConfig()
        self.attributes = attributes
        self.rejections = Rejections("incidents")
        self.grouper = self._fresh_grouper()
        self.baselines = Baselines()
        #: closed window start -> closed before every open incident, until its graph is in
        self.pending: dict[int, bool] = {}
        #: open incident -> (graph watermark, candidate services) of its last record
        self.ranked: dict[str, tuple[int, list[str]]] = {}

    def _fresh_grouper(self) -> IncidentGrouper:
        c = self.config
        return IncidentGrouper(self.window_ns, c.gap_windows, c.max_hops, c.min_firings)

    def process(
        self, alerts: Sequence[Alert], closed_starts: Iterable[int], state: MutableMapping[str, Any]
    ) -> tuple[list[Alert], list[IncidentRecord]]:
        """One close: alerts tagged with their incident, and the incident records to publish."""
        self._load(state)
        windows = self.graph.windows() if self.graph is not None else []
        edges = service_edges(windows)
        events = [
            AlertEvent(a.alert_id, a.window.service, a.window.operation, a.status,
                       a.window.window_start_ns)
            for a in alerts
        ]  # fmt: skip
        changes = self.grouper.observe(events, edges)
        starts = set(closed_starts)
        mark = max((w.window_start_ns for w in windows), default=-1)  # the graph's watermark
        self._learn(windows, starts, mark)
        # A close without alerts (an incident resolving on quiet windows) dates its
        # records by the windows it closed.
        ends = [a.window.window_end_ns for a in alerts] + [s + self.window_ns for s in starts]
        now = max(ends, default=0)
        records = [
            self._record(c, self._rank(c.incident, windows, edges), now, mark) for c in changes
        ]
        records += self._reranked({c.incident.incident_id for c in changes}, windows, edges,
                                  now, mark)  # fmt: skip
        tagged = [self._tag(a, changes) for a in alerts]
        self.ranked = {i: r for i, r in self.ranked.items() if i in self.grouper.open}
        state[STATE_KEY] = {
            "v": STATE_VERSION,
            "grouper": self.grouper.to_dict(),
            "baselines": self.baselines.to_dict(),
            "pending": [[start, normal] for start, normal in self.pending.items()],
            "ranked": [[i, at, services] for i, (at, services) in self.ranked.items()],
        }
        return tagged, records

    def _learn(self, windows: Sequence[GraphWindow], closed: set[int], mark: int) -> None:
        """Windows closed before every open incident's first alert window are normal: the
        baselines learn each once.

        A closed window waits in ``pending`` (with whether it closed before every open
        incident's first alert window) until a newer graph window is in, a sign its own
        data is complete (the module docstring).
        """
        opened = [i.opened_ns for i in self.grouper.open.values()]
        for start in sorted(closed):  # a backlog closes windows before and under an incident
            self.pending.setdefault(start, all(start < o for o in opened))
        by_start = {w.window_start_ns: w for w in windows}
        for start in sorted(self.pending):
            if start >= mark or start not in by_start:
                continue
            if self.pending.pop(start):
                self.baselines.learn(ops_of([by_start[start]]))
        for start in sorted(self.pending)[: max(0, len(self.pending) - MAX_PENDING)]:
            del self.pending[start]  # its graph window will not come (bounded state)

    def _tag(self, alert: Alert, changes: Sequence[Change]) -> Alert:
        incident = self.grouper.incident_of(alert.alert_id)
        if incident is None:  # resolved with this close: its incident is gone from the grouper
            incident = next(
                (c.incident.incident_id for c in changes if alert.alert_id in c.incident.alerts),
                None,
            )
        return dataclasses.replace(alert, incident_id=incident)

    def _reranked(
        self,
        changed: set[str],
        windows: Sequence[GraphWindow],
        edges: set[tuple[str, str]],
        now: int,
        mark: int,
    ) -> list[IncidentRecord]:
        """``updated`` records of open incidents whose graph caught up and whose candidates
        changed with it (the module docstring)."""
        out = []
        for inc in self.grouper.open.values():
            seen = self.ranked.get(inc.incident_id)
            if inc.incident_id in changed or seen is None:
                continue
            if not seen[0] <= inc.last_fired_ns < mark:
                continue
            candidates = self._rank(inc, windows, edges)
            if [c.service for c in candidates] == seen[1]:
                self.ranked[inc.incident_id] = (mark, seen[1])  # ranked on it: not again
                continue
            inc.version += 1
            out.append(self._record(Change("updated", inc), candidates, now, mark))
        return out

    def span(self, inc: Incident) -> tuple[int, int]:
        """The windows ``[since, until)`` an incident is ranked on: at most
        :data:`RANK_WINDOWS` ending with its last firing window, none before the window
        ahead of its first alert (a long incident, or faults chained into one, is ranked
        on what fires now)."""
        since = inc.opened_ns - self.window_ns
        since = max(since, inc.last_fired_ns - (RANK_WINDOWS - 1) * self.window_ns)
        return since, inc.last_fired_ns + self.window_ns

    def ops(self, inc: Incident, windows: Sequence[GraphWindow]) -> dict[OpKey, OpStats]:
        """The operations' signals summed over the incident's :meth:`span`."""
        since, until = self.span(inc)
        return ops_of(w for w in windows if since <= w.window_start_ns < until)

    def _rank(
        self, inc: Incident, windows: Sequence[GraphWindow], edges: set[tuple[str, str]]
    ) -> list[Candidate]:
        return rank(self.ops(inc, windows), self.baselines, edges, inc.services)

    def _record(
        self, change: Change, candidates: list[Candidate], now: int, mark: int
    ) -> IncidentRecord:
        inc = change.incident
        self.ranked[inc.incident_id] = (mark, [c.service for c in candidates])
        named: list[Named] = []
        if candidates and self.attributes is not None:
            named = over_represented(self.attributes(candidates[0].service, *self.span(inc)))
        return IncidentRecord(inc, change.status, now, tuple(candidates), tuple(named))

    def _load(self, state: MutableMapping[str, Any]) -> None:
        self.grouper, self.baselines = self._fresh_grouper(), Baselines()
        self.pending, self.ranked = {}, {}
        try:
            value = state.get(STATE_KEY)  # the table view raises StateError on bad bytes
            if value is None:
                return
            version = value.get("v") if isinstance(value, dict) else None
            if version not in STATE_KEYS:
                raise StateError("version", f"incident state version {str(version)[:20]!r}")
            data = record(value, "incidents", STATE_KEYS[version])
            grouper = self._fresh_grouper()
            grouper.load(data["grouper"])
            baselines = Baselines.from_dict(data["baselines"])
            pending = _pending(data["pending"])
            ranked = _ranked(data.get("ranked", []))
        except StateError as exc:
            self.rejections.reject(STATE_KEY, exc, STARTS_OVER)
            return
        self.grouper, self.baselines, self.pending = grouper, baselines, pending
        self.ranked = ranked


def _pending(value: object) -> dict[int, bool]:
    """The stored ``pending`` list, checked (untrusted): ``[[start_ns, normal], ...]``."""
    if not isinstance(value, list) or len(value) > MAX_PENDING:
        raise StateError("schema", f"incidents.pending: a list of at most {MAX_PENDING}")
    out: dict[int, bool] = {}
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], bool)):
            raise StateError("schema", f"incidents.pending: [start_ns, bool], got {item!r:.40}")
        out[int64(item[0], "incidents.pending")] = item[1]
    return out


def _ranked(value: object) -> dict[str, tuple[int, list[str]]]:
    """The stored ``ranked`` list, checked (untrusted): ``[[incident_id, mark, [service]]]``."""
    if not isinstance(value, list) or len(value) > MAX_OPEN:
        raise StateError("schema", f"incidents.ranked: a list of at most {MAX_OPEN}")
    out: dict[str, tuple[int, list[str]]] = {}
    for item in value:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], list)):
            raise StateError("schema", f"incidents.ranked: [id, mark, [service]], got {item!r:.40}")
        services = [text(s, "incidents.ranked[]", 512) for s in item[2][:16]]
        out[text(item[0], "incidents.ranked[]", 16)] = (
            int64(item[1], "incidents.ranked"),
            services,
        )
    return out
