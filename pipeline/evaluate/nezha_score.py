"""Score alerts of a Nezha replay against its labelled faults (pure).

Times are on the replay timeline (see :mod:`pipeline.evaluate.nezha`). A fault's
*range* runs from its injection for ``fault_s`` plus two windows (the alert of a
window comes when it closes), cut short at the next injection so that no alert
counts for two faults. An alert *onset* is an anomalous window of a service
(any of its operations) whose previous window on that service was not anomalous.

>>> W = 60 * NS_PER_S
>>> faults = [ScoredFault("f1", "cart", "cpu", 100 * NS_PER_S, 0.0)]
>>> alerts = [AlertWindow("cart", 120 * NS_PER_S, 180 * NS_PER_S),
...           AlertWindow("cart", 180 * NS_PER_S, 240 * NS_PER_S),
...           AlertWindow("ad", 600 * NS_PER_S, 660 * NS_PER_S)]
>>> report = score(faults, alerts, 0, 3600 * NS_PER_S, window_ns=W, fault_ns=120 * NS_PER_S)
>>> r = report.rows[0]
>>> (r.alerted, r.delay_s, r.onsets_service, r.onsets_other)
(True, 80.0, 1, 0)
>>> report.outside_onsets, round(report.outside_per_hour, 2)
(1, 1.07)
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
NS_PER_HOUR = 3600 * NS_PER_S


@dataclass(frozen=True)
class AlertWindow:
    """One anomalous window of a service (read from ``spanstream_anomalies``)."""

    service: str
    window_start_ns: int
    window_end_ns: int


@dataclass(frozen=True)
class ScoredFault:
    label: str  # the injection time as the data set writes it
    service: str
    kind: str
    inject_ns: int  # on the replay timeline
    clamped_s: float


@dataclass(frozen=True)
class FaultRow:
    fault: ScoredFault
    alerted: bool
    delay_s: float | None  # injection to the end of the first anomalous window
    onsets_service: int
    onsets_other: int


@dataclass(frozen=True)
class Report:
    rows: tuple[FaultRow, ...]
    outside_onsets: int
    outside_hours: float
    t0_ns: int = 0
    total_hours: float = 0.0

    @property
    def other_per_hour(self) -> float:
        """Onsets on services not under fault, over the whole replay (fault ranges included).

        The clips are minutes around faults, so little time lies outside every fault
        range; this rate is the steadier false-alarm figure (an upper bound: a fault
        can show in its callers).
        """
        n = self.outside_onsets + sum(r.onsets_other for r in self.rows)
        return n / self.total_hours if self.total_hours > 0 else 0.0

    @property
    def alerted(self) -> int:
        return sum(r.alerted for r in self.rows)

    @property
    def outside_per_hour(self) -> float:
        return self.outside_onsets / self.outside_hours if self.outside_hours > 0 else 0.0

    @property
    def delay_p50_s(self) -> float | None:
        delays = [r.delay_s for r in self.rows if r.delay_s is not None]
        return statistics.median(delays) if delays else None


def onsets(alerts: Sequence[AlertWindow], window_ns: int) -> list[AlertWindow]:
    """Per service, anomalous windows whose previous window was not anomalous.

    >>> a = [AlertWindow("s", 0, 60), AlertWindow("s", 60, 120), AlertWindow("s", 180, 240)]
    >>> [w.window_start_ns for w in onsets(a, 60)]
    [0, 180]
    """
    starts = {(a.service, a.window_start_ns) for a in alerts}
    firsts = {a for a in alerts if (a.service, a.window_start_ns - window_ns) not in starts}
    return sorted(firsts, key=lambda a: (a.window_start_ns, a.service))


@dataclass(frozen=True)
class AlertState:
    """One published alert version (``spanstream-alerts``): what the episodes are read from."""

    alert_id: str
    service: str
    status: str  # firing | resolved
    window_start_ns: int
    onset_start_ns: int


def episode_windows(
    states: Sequence[AlertState], window_ns: int, resolve_after: int = 3
) -> list[AlertWindow]:
    """The anomalous windows of each episode, from its published versions.

    The worker publishes an episode at onset, on a severity rise and once more
    when ``resolve_after`` normal windows in a row resolve it, so its last
    anomalous window starts ``resolve_after`` windows before the resolving one.
    An episode is taken as anomalous from its onset window to that one (a quiet
    window or two inside it count as anomalous: they do not split the alert);
    one still open at the end, to its last published window. (The anomalies
    table keeps only each episode's latest version once ClickHouse merges it,
    so it cannot tell this.)

    >>> s = [AlertState("a", "cart", "firing", 0, 0), AlertState("a", "cart", "resolved", 300, 0)]
    >>> [w.window_start_ns for w in episode_windows(s, 60)]  # quiet from 180 on
    [0, 60, 120]
    """
    out = []
    for service, start, last in episode_spans(states, window_ns, resolve_after).values():
        for t in range(start, last + 1, window_ns):
            out.append(AlertWindow(service, t, t + window_ns))
    return sorted(set(out), key=lambda a: (a.window_start_ns, a.service))


def episode_spans(
    states: Sequence[AlertState], window_ns: int, resolve_after: int = 3
) -> dict[str, tuple[str, int, int]]:
    """Per alert id: its service, first and last anomalous window start (see above).

    >>> s = [AlertState("a", "cart", "firing", 0, 0), AlertState("a", "cart", "resolved", 300, 0)]
    >>> episode_spans(s, 60)
    {'a': ('cart', 0, 120)}
    """
    onset: dict[str, tuple[str, int]] = {}
    last: dict[str, int] = {}
    for st in states:
        onset[st.alert_id] = (st.service, st.onset_start_ns)
        end = st.window_start_ns
        if st.status == "resolved":
            end -= resolve_after * window_ns
        last[st.alert_id] = max(last.get(st.alert_id, end), end)
    return {key: (service, start, max(last[key], start)) for key, (service, start) in onset.items()}


def _overlaps(a: AlertWindow, lo: int, hi: int) -> bool:
    return a.window_start_ns < hi and a.window_end_ns > lo


def fault_ranges(
    faults: Sequence[ScoredFault], window_ns: int, fault_ns: int
) -> list[tuple[int, int]]:
    """``[inject, min(inject + fault + 2 windows, next inject))`` per fault (in time order)."""
    ranges = []
    for i, f in enumerate(faults):
        end = f.inject_ns + fault_ns + 2 * window_ns
        if i + 1 < len(faults):
            end = min(end, max(faults[i + 1].inject_ns, f.inject_ns))
        ranges.append((f.inject_ns, end))
    return ranges


def _outside_ns(ranges: Sequence[tuple[int, int]], t0: int, t1: int) -> int:
    covered, reach = 0, t0
    for lo, hi in sorted(ranges):
        lo, hi = max(lo, reach), min(hi, t1)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return max(0, t1 - t0 - covered)


def score(
    faults: Sequence[ScoredFault],
    alerts: Sequence[AlertWindow],
    t0_ns: int,
    t1_ns: int,
    *,
    window_ns: int,
    fault_ns: int,
) -> Report:
    """Per-fault rows and the rate of onsets outside every fault range over ``[t0, t1)``."""
    faults = sorted(faults, key=lambda f: f.inject_ns)
    ranges = fault_ranges(faults, window_ns, fault_ns)
    starts = onsets(alerts, window_ns)
    rows = []
    for f, (lo, hi) in zip(faults, ranges, strict=True):
        mine = [a for a in alerts if a.service == f.service and _overlaps(a, lo, hi)]
        first = min((a.window_end_ns for a in mine), default=None)
        inside = [a for a in starts if _overlaps(a, lo, hi)]
        rows.append(
            FaultRow(
                f,
                bool(mine),
                None if first is None else (first - f.inject_ns) / NS_PER_S,
                sum(a.service == f.service for a in inside),
                sum(a.service != f.service for a in inside),
            )
        )
    outside = [a for a in starts if not any(_overlaps(a, lo, hi) for lo, hi in ranges)]
    hours = _outside_ns(ranges, t0_ns, t1_ns) / NS_PER_HOUR
    return Report(tuple(rows), len(outside), hours, t0_ns, (t1_ns - t0_ns) / NS_PER_HOUR)


COLUMNS = (
    "#",
    "injected",
    "replay_min",
    "service",
    "fault",
    "clamped_s",
    "alerted",
    "delay_s",
    "onsets",
    "other",
)


def _cells(i: int, r: FaultRow, t0_ns: int) -> list[str]:
    f = r.fault
    delay = "-" if r.delay_s is None else f"{r.delay_s:.0f}"
    alerted = "yes" if r.alerted else "no"
    at = f"{(f.inject_ns - t0_ns) / NS_PER_S / 60:.1f}"
    return [str(i), f.label, at, f.service, f.kind, f"{f.clamped_s:.0f}", alerted, delay]


def format_report(report: Report, markdown: bool = False) -> str:
    """Per-fault rows and a totals row, as aligned text or Markdown."""
    cells = [
        [*_cells(i + 1, r, report.t0_ns), str(r.onsets_service), str(r.onsets_other)]
        for i, r in enumerate(report.rows)
    ]
    p50 = "-" if report.delay_p50_s is None else f"p50 {report.delay_p50_s:.0f}"
    n = len(report.rows)
    own = sum(r.onsets_service for r in report.rows)
    other = sum(r.onsets_other for r in report.rows)
    cells.append(["total", "", "", "", "", "", f"{report.alerted}/{n}", p50, str(own), str(other)])
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        table = "\n".join(lines)
    else:
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(COLUMNS)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        table = "\n".join([fmt.format(*COLUMNS)] + [fmt.format(*c) for c in cells])
    outside = (
        f"alert onsets outside faults: {report.outside_onsets} in {report.outside_hours:.2f} h "
        f"of replayed time = {report.outside_per_hour:.1f}/h; on services not under fault, "
        f"whole replay ({report.total_hours:.2f} h): {report.other_per_hour:.1f}/h"
    )
    return f"{table}\n\n{outside}"
