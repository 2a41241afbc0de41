"""Score ``evaluate --rca`` outcomes against the fault labels and print the table (pure).

A fault *owns* the incidents opened within its range: from ``gap_windows``
windows before its start (a pending incident opened by an unrelated alert that
the fault's alerts join and confirm) to its end plus :data:`GRACE_WINDOWS`
windows (detection delay, alerts that fire late); an incident no fault owns
is a false incident. Root-cause accuracy is scored on
each fault's first incident's final ranking; a fault with no incident counts
as a miss in every accuracy column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.evaluate.rca import IncidentOutcome, Outcome
from pipeline.evaluate.rca_scenarios import Fault

GRACE_WINDOWS = 4
DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class Scores:
    """One seed's figures (shares in [0, 1]; None where nothing was scored)."""

    seed: int
    faults: int
    exactly_one: float
    no_incident: int
    alerts_per_fault: float
    incidents_per_fault: float
    service_top1: float
    service_top3: float
    op_top1: float | None
    op_top3: float | None
    attribute_named: float | None
    false_incidents: int
    false_per_day: float


def _range(fault: Fault, t0: int, window_ns: int, gap_windows: int) -> tuple[int, int]:
    start, end = fault.anomaly.window_ns(t0)
    return start - gap_windows * window_ns, end + GRACE_WINDOWS * window_ns


def _hit(fault: Fault, inc: IncidentOutcome, k: int) -> tuple[bool, bool | None, bool | None]:
    services = [c.service for c in inc.ranking[:k]]
    svc = fault.anomaly.service in services
    op = None
    if fault.operation is not None:
        op = any(o.service == fault.anomaly.service and o.operation == fault.operation
                 for o in inc.operations[:k])  # fmt: skip
    named = None
    if fault.attribute is not None:
        named = fault.attribute in {(n.key, n.value) for n in inc.named}
    return svc, op, named


def score(seed: int, outcome: Outcome, t0: int, gap_windows: int) -> Scores:
    """The figures of one seed's run."""
    w = outcome.window_ns
    owned: set[str] = set()
    per_fault: list[int] = []
    alerts: list[int] = []
    top1: list[bool] = []
    top3: list[bool] = []
    op1: list[bool] = []
    op3: list[bool] = []
    named: list[bool] = []
    for fault in outcome.faults.faults:
        lo, hi = _range(fault, t0, w, gap_windows)
        incs = sorted(
            (i for i in outcome.incidents.values() if lo <= i.opened_ns < hi),
            key=lambda i: i.opened_ns,
        )
        owned.update(i.incident_id for i in incs)
        per_fault.append(len(incs))
        alerts.append(sum(1 for _, _, t in outcome.alert_onsets if lo <= t < hi))
        s1 = s3 = False
        o1 = o3 = n = None
        if incs:
            s1, o1, n = _hit(fault, incs[0], 1)
            s3, o3, _ = _hit(fault, incs[0], 3)
        top1.append(s1)
        top3.append(s3)
        if fault.operation is not None:
            op1.append(bool(o1))
            op3.append(bool(o3))
        if fault.attribute is not None:
            named.append(bool(n))
    false = len(outcome.incidents) - len(owned)
    days = outcome.faults.duration_s * 1e9 / DAY_NS
    total = len(per_fault)
    return Scores(
        seed, total, sum(1 for c in per_fault if c == 1) / total,
        sum(1 for c in per_fault if c == 0),
        sum(alerts) / total, sum(per_fault) / total, sum(top1) / total, sum(top3) / total,
        _share(op1), _share(op3), _share(named), false, false / days,
    )  # fmt: skip


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


COLUMNS = (
    ("seed", "seed"),
    ("faults", "faults"),
    ("exactly_one", "1 incident"),
    ("no_incident", "missed"),
    ("alerts_per_fault", "alerts/fault"),
    ("incidents_per_fault", "pages/fault"),
    ("service_top1", "svc top1"),
    ("service_top3", "svc top3"),
    ("op_top1", "op top1"),
    ("op_top3", "op top3"),
    ("attribute_named", "attr named"),
    ("false_incidents", "false inc"),
    ("false_per_day", "false/day"),
)


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def format_table(rows: Sequence[Scores], markdown: bool = False) -> str:
    """Rows as aligned text or Markdown."""
    heads = [h for _, h in COLUMNS]
    cells = [[_cell(getattr(r, f)) for f, _ in COLUMNS] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*heads)] + [fmt.format(*c) for c in cells])
