"""Score the incidents of a Nezha replay against its labelled faults (pure).

Read beside :mod:`pipeline.evaluate.nezha_score` (same fault ranges, same
replay timeline). Per fault:

* *incidents*: incidents whose first window (``opened_at`` plus one window)
  closes in the fault's range; *alerts*: alert onsets (every service) whose
  window closes in the range, i.e. what would page without grouping. (By the
  close, not by overlap as the alert table counts: a window straddling two
  ranges counts once.)
* the incident *holding* the faulted service's alerts: the incident record that
  lists the first of that service's alert episodes overlapping the range (one
  that never became an incident, a lone one-window alert, holds none);
* *held*: whether an incident holds them;
* *rank*: the faulted service's place among that incident's root-cause
  candidates (1 = top), ``None`` when it is not a candidate or no incident holds it,
  in the incident's last record published by the end of the fault's range (its
  first record if it came later): the ranking on-call had while the fault's alerts
  fired, as detection is judged by the same deadline. The incident's very last
  record would judge a fault chained into a long incident by a later fault's ranking.

Totals: faults with exactly one incident, alerts vs incidents per fault, RCA
top-1 and top-3 at service level over the alerted faults (a fault whose alerts
no incident holds counts as a miss), and incidents *on services not under
fault*: opened outside every fault range, or in one without the faulted service
among their services, per hour of the whole replay.

>>> S = NS_PER_S
>>> f = ScoredFault("f1", "cart", "cpu", 100 * S, 0.0)
>>> alerts = [AlertState("a1", "cart", "firing", 120 * S, 120 * S)]
>>> inc = IncidentState("i1", 2, "updated", 60 * S, ("web", "cart"), ("a1",), ("cart", "web"))
>>> rep = score_incidents([f], alerts, [inc], 0, 3600 * S, window_ns=60 * S, fault_ns=120 * S)
>>> r = rep.rows[0]
>>> (r.incidents, r.holding, r.rank), (rep.exactly_one, rep.top1, rep.top3)
((1, 'i1', 1), (1, 1, 1))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.evaluate.nezha_score import (
    NS_PER_HOUR,
    NS_PER_S,
    AlertState,
    ScoredFault,
    episode_spans,
    episode_windows,
    fault_ranges,
    onsets,
)


@dataclass(frozen=True)
class IncidentState:
    """One published incident record version (``kind: incident`` on the alert topic)."""

    incident_id: str
    version: int
    status: str
    opened_ns: int  # start of the window of the incident's first alert
    services: tuple[str, ...]
    alert_ids: tuple[str, ...]
    root_services: tuple[str, ...]  # candidates, best first
    updated_ns: int = 0  # the record's updated_at


def latest(states: Sequence[IncidentState]) -> list[IncidentState]:
    """Each incident's highest version, in order of opening.

    >>> a1 = IncidentState("a", 1, "opened", 60, ("x",), ("1",), ())
    >>> a2 = IncidentState("a", 2, "resolved", 60, ("x",), ("1",), ("x",))
    >>> [(i.incident_id, i.version) for i in latest([a2, a1])]
    [('a', 2)]
    """
    best: dict[str, IncidentState] = {}
    for st in states:
        if st.incident_id not in best or st.version > best[st.incident_id].version:
            best[st.incident_id] = st
    return sorted(best.values(), key=lambda i: (i.opened_ns, i.incident_id))


@dataclass(frozen=True)
class IncidentRow:
    fault: ScoredFault
    alerted: bool
    alerts: int  # alert onsets on every service in the range
    incidents: int  # incidents opened in the range
    holding: str | None  # incident id holding the faulted service's first alert in the range
    top: str | None  # that incident's top candidate service
    rank: int | None  # the faulted service's rank among its candidates (1 = top)


@dataclass(frozen=True)
class IncidentReport:
    rows: tuple[IncidentRow, ...]
    incidents: int  # in the whole replay
    other: int  # on services not under fault
    total_hours: float

    @property
    def alerted(self) -> int:
        return sum(r.alerted for r in self.rows)

    @property
    def exactly_one(self) -> int:
        return sum(r.incidents == 1 for r in self.rows)

    @property
    def top1(self) -> int:
        return sum(r.alerted and r.rank == 1 for r in self.rows)

    @property
    def top3(self) -> int:
        return sum(r.alerted and r.rank is not None and r.rank <= 3 for r in self.rows)

    @property
    def other_per_hour(self) -> float:
        return self.other / self.total_hours if self.total_hours > 0 else 0.0


def _overlaps(start: int, end: int, lo: int, hi: int) -> bool:
    return start < hi and end > lo


def _holding(
    service: str,
    lo: int,
    hi: int,
    spans: dict[str, tuple[str, int, int]],
    incidents: Sequence[IncidentState],
    window_ns: int,
) -> IncidentState | None:
    """The incident listing the first of ``service``'s alert episodes overlapping [lo, hi)."""
    mine = sorted(
        (start, aid)
        for aid, (svc, start, last) in spans.items()
        if svc == service and _overlaps(start, last + window_ns, lo, hi)
    )
    for _, aid in mine:
        for inc in incidents:
            if aid in inc.alert_ids:
                return inc
    return None


def as_of(inc: IncidentState, states: Sequence[IncidentState], deadline: int) -> IncidentState:
    """``inc``'s last version published by ``deadline``, else its first.

    >>> v = [IncidentState("a", n, "updated", 0, (), (), (), n * 60) for n in (1, 2, 3)]
    >>> as_of(v[2], v, 150).version, as_of(v[2], v, 30).version
    (2, 1)
    """
    mine = sorted((s for s in states if s.incident_id == inc.incident_id), key=lambda s: s.version)
    due = [s for s in mine if s.updated_ns <= deadline]
    return due[-1] if due else mine[0]


def _rank(service: str, inc: IncidentState | None) -> int | None:
    if inc is None or service not in inc.root_services:
        return None
    return inc.root_services.index(service) + 1


def score_incidents(
    faults: Sequence[ScoredFault],
    alerts: Sequence[AlertState],
    incident_states: Sequence[IncidentState],
    t0_ns: int,
    t1_ns: int,
    *,
    window_ns: int,
    fault_ns: int,
) -> IncidentReport:
    """Per-fault incident rows and totals (see the module docstring)."""
    faults = sorted(faults, key=lambda f: f.inject_ns)
    ranges = fault_ranges(faults, window_ns, fault_ns)
    incidents = latest(incident_states)
    spans = episode_spans(alerts, window_ns)
    starts = onsets(episode_windows(alerts, window_ns), window_ns)
    rows = []
    on_fault: set[str] = set()
    for f, (lo, hi) in zip(faults, ranges, strict=True):
        opened = [i for i in incidents if lo < i.opened_ns + window_ns <= hi]
        on_fault.update(i.incident_id for i in opened if f.service in i.services)
        holding = _holding(f.service, lo, hi, spans, incidents, window_ns)
        if holding is not None:
            holding = as_of(holding, incident_states, hi)
        alerted = any(
            svc == f.service and _overlaps(start, last + window_ns, lo, hi)
            for svc, start, last in spans.values()
        )
        rows.append(
            IncidentRow(
                f,
                alerted,
                sum(lo < a.window_end_ns <= hi for a in starts),
                len(opened),
                None if holding is None else holding.incident_id,
                holding.root_services[0] if holding and holding.root_services else None,
                _rank(f.service, holding),
            )
        )
    other = sum(i.incident_id not in on_fault for i in incidents)
    return IncidentReport(tuple(rows), len(incidents), other, (t1_ns - t0_ns) / NS_PER_HOUR)


COLUMNS = (
    "#",
    "service",
    "fault",
    "alerted",
    "alerts",
    "incidents",
    "held",
    "top candidate",
    "rank",
)


def _cells(i: int, r: IncidentRow) -> list[str]:
    rank = "-" if r.rank is None else str(r.rank)
    held = "-" if not r.alerted else "yes" if r.holding else "no"
    return [
        str(i),
        r.fault.service,
        r.fault.kind,
        "yes" if r.alerted else "no",
        str(r.alerts),
        str(r.incidents),
        held,
        r.top or "-",
        rank,
    ]


def format_incidents(report: IncidentReport, markdown: bool = False) -> str:
    """Per-fault rows, a totals row and the totals in words."""
    cells = [_cells(i + 1, r) for i, r in enumerate(report.rows)]
    n, alerted = len(report.rows), report.alerted
    alerts = sum(r.alerts for r in report.rows)
    incidents = sum(r.incidents for r in report.rows)
    top = f"top-1 {report.top1}/{alerted}"
    held = sum(r.alerted and r.holding is not None for r in report.rows)
    total = ["total", "", "", f"{alerted}/{n}", str(alerts), str(incidents), f"{held}/{alerted}"]
    cells.append([*total, top, ""])
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        table = "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    else:
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(COLUMNS)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        table = "\n".join([fmt.format(*COLUMNS)] + [fmt.format(*c) for c in cells])
    per = (lambda x: f"{x / n:.2f}") if n else (lambda _x: "-")
    share = (lambda k: f"{k}/{alerted} = {k / alerted:.2f}") if alerted else (lambda k: f"{k}/0")
    totals = (
        f"incidents: {report.incidents} in the replay; faults with exactly one incident: "
        f"{report.exactly_one}/{n}; per fault: {per(alerts)} alert onsets -> "
        f"{per(incidents)} incidents; root cause (service) over alerted faults: top-1 "
        f"{share(report.top1)}, top-3 {share(report.top3)}; incidents on services not under "
        f"fault: {report.other} in {report.total_hours:.2f} h = {report.other_per_hour:.1f}/h"
    )
    return f"{table}\n\n{totals}"


__all__ = ["NS_PER_S", "IncidentReport", "IncidentRow", "IncidentState", "score_incidents"]
