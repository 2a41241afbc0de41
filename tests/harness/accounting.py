"""Input/output accounting for fault-injection runs: what went in, what came out, what was lost.

Pure functions, in the spirit of Kafka's system tests: the manifest of
``spanstream generate`` is the input set (every TraceId+SpanId sent), the rows
read back from ``otel_traces`` are the output, and the difference is the loss.

* :func:`expected_spans` -- the input set from a manifest.
* :func:`reference_windows` -- Requests per (ServiceName, operation, WindowStart ms)
  computed from the manifest, to compare with ``spanstream_red_metrics FINAL``.
* :func:`account` -- one :class:`Accounting` row from the stored (TraceId, SpanId, rows)
  counts, the DLQ count, the window rows and the run's timings.
* :func:`render_table` and ``python -m tests.harness.accounting summarize FILE``
  print the rows written (JSON lines) by the fault tests.

``unique_out`` counts the distinct input spans that were *decided*: stored, or
counted as sampled out. With ``SPANSTREAM_BASELINE_RATE=1.0`` every trace is
kept, so sampled out is 0 and ``unique_out`` is simply the distinct stored
spans: the simplest exact check, and what the fault tests use.

>>> from pipeline.generate.manifest import ManifestSpan
>>> spans = [ManifestSpan("t1", "a", "cart", "GET", 1_000_000_000, 5, False),
...          ManifestSpan("t1", "b", "cart", "GET", 2_000_000_000, 5, False),
...          ManifestSpan("t2", "c", "cart", "GET", 61_000_000_000, 5, False)]
>>> ref = reference_windows(spans, window_s=60)
>>> ref[("cart", "GET", 0)], ref[("cart", "GET", 60_000)]
(2, 1)
>>> acc = account("demo", {(s.trace_id, s.span_id) for s in spans},
...               [("t1", "a", 1), ("t1", "b", 2)], dlq=0,
...               windows={("cart", "GET", 0): (2, 0), ("cart", "GET", 60_000): (0, 1)},
...               reference=ref)
>>> acc.lost, acc.dup_rows, acc.windows_equal, acc.window_requests, acc.window_late
(1, 1, False, 2, 1)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.generate.manifest import Manifest, ManifestSpan

NS_PER_MS = 1_000_000
SpanKey = tuple[str, str]
#: (ServiceName, operation, WindowStart in ms since the epoch)
WindowKey = tuple[str, str, int]


def expected_spans(manifest: Manifest) -> set[SpanKey]:
    """Every (TraceId, SpanId) the manifest says was sent."""
    return {(s.trace_id, s.span_id) for s in manifest.spans()}


def reference_windows(
    spans: Iterable[ManifestSpan],
    window_s: int,
    op: Callable[[ManifestSpan], str] = lambda s: s.span_name,
) -> dict[WindowKey, int]:
    """Requests per (service, ``op(span)``, window start in ms), as the RED table keys them.

    ``op`` maps a sent span to the operation the worker derives (the manifest
    keeps the raw span name; the enricher normalizes it using attributes).
    """
    width = window_s * 1_000_000_000
    out: dict[WindowKey, int] = {}
    for s in spans:
        key = (s.service, op(s), (s.start_ns - s.start_ns % width) // NS_PER_MS)
        out[key] = out.get(key, 0) + 1
    return out


@dataclass(frozen=True)
class WindowComparison:
    """``spanstream_red_metrics FINAL`` against the reference computed from the manifest."""

    equal: bool
    #: series-windows whose Requests differ from the reference (missing ones included)
    mismatched: int
    requests: int
    late: int
    reference: int

    @property
    def accounted(self) -> int:
        """Requests + LateSpans: every span should be in one or the other."""
        return self.requests + self.late


def compare_windows(
    reference: Mapping[WindowKey, int], observed: Mapping[WindowKey, tuple[int, int]]
) -> WindowComparison:
    """Compare Requests per window; ``observed`` maps a window to (Requests, LateSpans).

    Windows with zero requests in ``observed`` and absent from the reference
    (closed empty windows) do not count as mismatches.

    >>> compare_windows({("s", "o", 0): 3}, {("s", "o", 0): (3, 0), ("s", "o", 60): (0, 0)})
    WindowComparison(equal=True, mismatched=0, requests=3, late=0, reference=3)
    """
    mismatched = 0
    for key in set(reference) | set(observed):
        want = reference.get(key, 0)
        got = observed.get(key, (0, 0))[0]
        if want != got:
            mismatched += 1
    requests = sum(r for r, _ in observed.values())
    late = sum(lt for _, lt in observed.values())
    return WindowComparison(mismatched == 0, mismatched, requests, late, sum(reference.values()))


@dataclass
class Accounting:
    """One scenario's result row (JSON-serializable; see :func:`render_table`)."""

    scenario: str
    #: spans produced (manifest)
    in_spans: int
    #: distinct input spans decided: stored, or counted as sampled out
    unique_out: int
    #: in_spans - unique_out
    lost: int
    #: rows in otel_traces minus distinct (TraceId, SpanId)
    dup_rows: int
    #: messages in the DLQ topic
    dlq: int
    #: stored spans that were never sent (should be 0)
    unexpected: int = 0
    #: spans counted as sampled out (0 with SPANSTREAM_BASELINE_RATE=1.0)
    sampled_out: int = 0
    #: worst restart -> progress-resumes time over the run's restarts (s)
    recovery_s: float | None = None
    peak_rss_mb: float = 0.0
    #: None when windows were not compared
    windows_equal: bool | None = None
    windows_mismatched: int = 0
    window_requests: int = 0
    window_late: int = 0
    window_reference: int = 0
    #: faults injected (kills, restarts, bad records, ...)
    faults: int = 0
    duration_s: float = 0.0
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing duplicated, nothing invented."""
        return self.lost == 0 and self.dup_rows == 0 and self.unexpected == 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Accounting:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


def account(
    scenario: str,
    expected: set[SpanKey],
    stored: Iterable[tuple[str, str, int]],
    *,
    dlq: int,
    sampled_out: Iterable[SpanKey] = (),
    windows: Mapping[WindowKey, tuple[int, int]] | None = None,
    reference: Mapping[WindowKey, int] | None = None,
    **extra: Any,
) -> Accounting:
    """Build the row from ``stored`` = (TraceId, SpanId, row count) per distinct stored span.

    ``extra`` sets further :class:`Accounting` fields (recovery_s, peak_rss_mb, faults,
    duration_s, notes, extra).
    """
    rows = 0
    distinct: set[SpanKey] = set()
    for trace_id, span_id, n in stored:
        rows += n
        distinct.add((trace_id, span_id))
    dropped = set(sampled_out) & expected
    decided = (distinct & expected) | dropped
    acc = Accounting(
        scenario=scenario,
        in_spans=len(expected),
        unique_out=len(decided),
        lost=len(expected) - len(decided),
        dup_rows=rows - len(distinct),
        dlq=dlq,
        unexpected=len(distinct - expected),
        sampled_out=len(dropped),
        **extra,
    )
    if windows is not None and reference is not None:
        cmp = compare_windows(reference, windows)
        acc.windows_equal = cmp.equal
        acc.windows_mismatched = cmp.mismatched
        acc.window_requests = cmp.requests
        acc.window_late = cmp.late
        acc.window_reference = cmp.reference
    return acc


def append_result(path: str | Path, acc: Accounting) -> None:
    """Append one JSON line to the results file (created with its parents)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(acc.to_json() + "\n")


def read_results(path: str | Path) -> list[Accounting]:
    """Rows of a results file; a later row of the same scenario replaces an earlier one."""
    rows: dict[str, Accounting] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            acc = Accounting.from_dict(json.loads(line))
            rows[acc.scenario] = acc
    return list(rows.values())


COLUMNS: Sequence[tuple[str, str]] = (
    ("scenario", "scenario"),
    ("in", "in_spans"),
    ("unique_out", "unique_out"),
    ("lost", "lost"),
    ("dup_rows", "dup_rows"),
    ("dlq", "dlq"),
    ("faults", "faults"),
    ("recovery_s", "recovery_s"),
    ("peak_rss_mb", "peak_rss_mb"),
    ("windows_equal", "windows_equal"),
    ("req+late/ref", "_windows"),
    ("secs", "duration_s"),
)


def _cell(acc: Accounting, attr: str) -> str:
    if attr == "_windows":
        if acc.windows_equal is None:
            return "-"
        return f"{acc.window_requests}+{acc.window_late}/{acc.window_reference}"
    value = getattr(acc, attr)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def render_table(rows: Sequence[Accounting]) -> str:
    """A Markdown table of the rows, one per scenario, with notes listed below it.

    >>> print(render_table([Accounting("kill", 10, 10, 0, 0, 0, faults=3, recovery_s=1.25)]))
    | scenario | in | unique_out | lost | dup_rows | dlq | faults | recovery_s | peak_rss_mb | windows_equal | req+late/ref | secs |
    |---|---|---|---|---|---|---|---|---|---|---|---|
    | kill | 10 | 10 | 0 | 0 | 0 | 3 | 1.2 | 0.0 | - | - | 0.0 |
    """  # noqa: E501
    header = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * len(COLUMNS)]
    for acc in rows:
        lines.append("| " + " | ".join(_cell(acc, attr) for _, attr in COLUMNS) + " |")
    notes = [f"- {acc.scenario}: {acc.notes}" for acc in rows if acc.notes]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.accounting")
    sub = parser.add_subparsers(dest="command", required=True)
    summarize = sub.add_parser("summarize", help="print the results table of a JSON-lines file")
    summarize.add_argument("file")
    args = parser.parse_args(argv)
    rows = read_results(args.file)
    print(render_table(rows))
    return 0 if all(r.ok for r in rows) else 1


def windows_by_start(
    reference: dict[tuple[str, str, int], int],
    windows: dict[tuple[str, str, int], tuple[int, int]],
) -> list[list[int]]:
    """[window start s, reference, Requests, LateSpans] per window start where they differ.

    >>> windows_by_start({("s", "o", 0): 3}, {("s", "o", 0): (2, 1), ("s", "o", 10_000): (0, 0)})
    [[0, 3, 2, 1]]
    """
    starts = sorted({k[2] for k in reference} | {k[2] for k in windows})
    out = []
    for start in starts:
        ref = sum(v for k, v in reference.items() if k[2] == start)
        req = sum(v[0] for k, v in windows.items() if k[2] == start)
        late = sum(v[1] for k, v in windows.items() if k[2] == start)
        if ref != req or late:
            out.append([start // 1000, ref, req, late])
    return out


if __name__ == "__main__":
    sys.exit(main())
