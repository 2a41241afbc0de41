"""The window stage's incident step: group a close's alerts, rank root causes, make records.

Plain code, no Faust or Kafka: :class:`IncidentDesk` takes the alerts one close
produced and the closed window starts, and returns the alerts tagged with their
``incident_id`` plus the incident records to publish. Root-cause signals come
from the service graph's recent windows (``graph``: anything with ``windows()``,
e.g. :class:`pipeline.graph.aggregate.GraphHistory`); without a graph the
ranking has nothing to read and incidents name no candidate. Attribute counts
come from ``attributes`` (a callable over kept spans, see
:mod:`pipeline.incidents.attributes`), if given.

State (open incidents and per-operation baselines) is read from the state table
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
from pipeline.checked import StateError, int64, record
from pipeline.graph.edges import GraphWindow
from pipeline.incidents.attributes import Named, over_represented
from pipeline.incidents.grouping import AlertEvent, Change, IncidentGrouper
from pipeline.incidents.records import IncidentRecord
from pipeline.incidents.rootcause import Baselines, rank
from pipeline.incidents.signals import ops_of, service_edges
from pipeline.rejections import Rejections

log = logging.getLogger(__name__)

#: The state table key of the incident state.
STATE_KEY = "__incidents__"
STATE_VERSION = 2
#: Closed windows whose graph data is awaited before the baselines learn them (or not).
MAX_PENDING = 256
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
        #: closed window start -> closed with no incident open, until its graph data is in
        self.pending: dict[int, bool] = {}

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
        self._learn(windows, starts)
        # A close without alerts (an incident resolving on quiet windows) dates its
        # records by the windows it closed.
        ends = [a.window.window_end_ns for a in alerts] + [s + self.window_ns for s in starts]
        now = max(ends, default=0)
        records = [self._record(c, windows, edges, now) for c in changes]
        tagged = [self._tag(a, changes) for a in alerts]
        state[STATE_KEY] = {
            "v": STATE_VERSION,
            "grouper": self.grouper.to_dict(),
            "baselines": self.baselines.to_dict(),
            "pending": [[start, normal] for start, normal in self.pending.items()],
        }
        return tagged, records

    def _learn(self, windows: Sequence[GraphWindow], closed: set[int]) -> None:
        """Windows closed with no incident open are normal: the baselines learn each once.

        A window's graph data follows its traces' sampling decisions and the graph flush,
        so it can arrive closes after the window closed (reading a backlog, a busy
        machine): a closed window waits in ``pending`` (with whether an incident was open
        at its close) until a newer graph window is in, a sign its own data is complete.
        """
        normal = not self.grouper.open
        for start in sorted(closed):
            self.pending.setdefault(start, normal)
        by_start = {w.window_start_ns: w for w in windows}
        newest = max(by_start, default=None)
        for start in sorted(self.pending):
            if newest is None or start >= newest or start not in by_start:
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

    def _record(
        self, change: Change, windows: Sequence[GraphWindow], edges: set[tuple[str, str]], now: int
    ) -> IncidentRecord:
        inc = change.incident
        since = inc.opened_ns - self.window_ns
        ops = ops_of(w for w in windows if w.window_start_ns >= since)
        candidates = rank(ops, self.baselines, edges, inc.services)
        named: list[Named] = []
        if candidates and self.attributes is not None:
            named = over_represented(self.attributes(candidates[0].service, since, now))
        return IncidentRecord(inc, change.status, now, tuple(candidates), tuple(named))

    def _load(self, state: MutableMapping[str, Any]) -> None:
        self.grouper, self.baselines = self._fresh_grouper(), Baselines()
        self.pending = {}
        try:
            value = state.get(STATE_KEY)  # the table view raises StateError on bad bytes
            if value is None:
                return
            data = record(value, "incidents", ["v", "grouper", "baselines", "pending"])
            if data["v"] != STATE_VERSION:
                raise StateError("version", f"incident state version {str(data['v'])[:20]!r}")
            grouper = self._fresh_grouper()
            grouper.load(data["grouper"])
            baselines = Baselines.from_dict(data["baselines"])
            pending = _pending(data["pending"])
        except StateError as exc:
            self.rejections.reject(STATE_KEY, exc, STARTS_OVER)
            return
        self.grouper, self.baselines, self.pending = grouper, baselines, pending


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
