"""Final-aggregation state of one series (service, operation) and its closed windows.

:class:`SeriesState` is the value the assembler keeps per series, e.g. in a
Faust table. The open windows' counts, the per-source dedup markers, the
closed-through mark and the pending late count live in this ONE value, so a
single changelog write updates them together: a crash can never persist the
counts without the marker that makes their replay a duplicate, or vice versa.

Dedup marker per source partition: the highest ``last_offset`` merged and the
window starts merged at that offset (one cut yields one partial per window,
all sharing ``last_offset``). A partial is a duplicate when its
``last_offset`` is lower, or equal with its window already listed. This
relies on each source's partials reaching the series in cut order, which
Kafka keeps for one producer and one key (use an idempotent producer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.checked import StateError, count, int64, items, record, text
from pipeline.windows.partial import Partial
from pipeline.windows.red_stats import WindowStats


@dataclass(frozen=True)
class ClosedWindow:
    """Final RED metrics of one series in one window; quantiles are 0.0 when empty."""

    service: str
    operation: str
    window_start_ns: int
    window_end_ns: int
    requests: int
    errors: int
    error_ratio: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    late_spans: int
    exemplars: tuple[str, ...]
    #: ``(threshold_ns, requests at most that long, requests counted for it)`` per latency
    #: threshold of an SLO on the service (see :attr:`WindowStats.under`).
    under: tuple[tuple[int, int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``under`` only when there are thresholds)."""
        data = dict(self.__dict__)
        data["exemplars"] = list(self.exemplars)
        data["under"] = [list(u) for u in self.under]
        if not self.under:
            del data["under"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClosedWindow:
        """Rebuild from :meth:`to_dict` output."""
        under = tuple(tuple(u) for u in data.get("under", ()))
        return cls(**{**data, "exemplars": tuple(data["exemplars"]), "under": under})


@dataclass
class SeriesState:
    """Open windows, dedup markers and close progress of one series."""

    service: str
    operation: str
    windows: dict[int, WindowStats] = field(default_factory=dict)
    #: source partition -> (highest last_offset merged, window starts merged at it)
    through: dict[int, tuple[int, tuple[int, ...]]] = field(default_factory=dict)
    #: every window starting before this is closed; None until the first close
    closed_until_ns: int | None = None
    empty_run: int = 0
    pending_late: int = 0

    def is_duplicate(self, partial: Partial) -> bool:
        """True if this partial (or its replay) was already taken in."""
        mark = self.through.get(partial.source_partition)
        if mark is None:
            return False
        last, starts = mark
        return partial.last_offset < last or (
            partial.last_offset == last and partial.window_start_ns in starts
        )

    def mark(self, partial: Partial) -> None:
        """Record the partial as taken in (merged or counted late)."""
        mark = self.through.get(partial.source_partition)
        if mark is not None and mark[0] == partial.last_offset:
            starts = tuple(sorted((*mark[1], partial.window_start_ns)))
        else:
            starts = (partial.window_start_ns,)
        self.through[partial.source_partition] = (partial.last_offset, starts)

    def is_closed(self, window_start_ns: int) -> bool:
        """True if that window of this series was already closed."""
        return self.closed_until_ns is not None and window_start_ns < self.closed_until_ns

    def add(self, partial: Partial, max_exemplars: int) -> None:
        """Merge the partial's counts into its open window."""
        window = self.windows.get(partial.window_start_ns)
        if window is None:
            self.windows[partial.window_start_ns] = partial.stats(max_exemplars)
        else:
            window.merge(partial.stats(max_exemplars))

    def close(self, last_start_ns: int, window_ns: int, max_empty: int) -> list[ClosedWindow]:
        """Close every window starting at or before ``last_start_ns``, in order.

        Gaps after traffic become zero-request windows, but only ``max_empty``
        in a row: a series that went quiet stops emitting until traffic (or a
        late partial, whose count must be reported) comes back.
        """
        start = self.closed_until_ns
        if start is None:
            start = min(self.windows, default=None)
        if start is None or start > last_start_ns:
            return []
        closed: list[ClosedWindow] = []
        while start <= last_start_ns:
            stats = self.windows.pop(start, None)
            if stats is not None or self.pending_late or self.empty_run < max_empty:
                closed.append(self._emit(start, window_ns, stats))
                start += window_ns
            else:
                start = min((s for s in self.windows if s > start), default=last_start_ns + 1)
        self.closed_until_ns = last_start_ns + window_ns
        return closed

    def _emit(self, start: int, window_ns: int, stats: WindowStats | None) -> ClosedWindow:
        self.empty_run = 0 if stats is not None else self.empty_run + 1
        late, self.pending_late = self.pending_late, 0
        if stats is None:
            stats = WindowStats(0)
        sketch = stats.sketch
        return ClosedWindow(
            service=self.service,
            operation=self.operation,
            window_start_ns=start,
            window_end_ns=start + window_ns,
            requests=stats.requests,
            errors=stats.errors,
            error_ratio=stats.errors / stats.requests if stats.requests else 0.0,
            p50_ms=sketch.quantile(0.5),
            p95_ms=sketch.quantile(0.95),
            p99_ms=sketch.quantile(0.99),
            max_ms=stats.max_ms,
            late_spans=late,
            exemplars=tuple(e.trace_id for e in stats.exemplars),
            under=tuple((t, n, c) for t, (n, c) in sorted(stats.under.items())),
        )

    def dormant(self, max_empty: int) -> bool:
        """True when nothing would be lost by forgetting this series (beyond dedup marks)."""
        return not self.windows and not self.pending_late and self.empty_run >= max_empty

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; lists of pairs because JSON object keys must be strings."""
        return {
            "service": self.service,
            "operation": self.operation,
            "windows": [[s, w.to_dict()] for s, w in sorted(self.windows.items())],
            "through": [[p, last, list(st)] for p, (last, st) in sorted(self.through.items())],
            "closed_until_ns": self.closed_until_ns,
            "empty_run": self.empty_run,
            "pending_late": self.pending_late,
        }

    @classmethod
    def from_dict(cls, data: object) -> SeriesState:
        """Rebuild from :meth:`to_dict` output, checked: the windows table's changelog is
        untrusted input (``StateError`` for anything :meth:`to_dict` would not write)."""
        keys = ["service", "operation", "windows", "through"]
        d = record(data, "series", [*keys, "closed_until_ns", "empty_run", "pending_late"])
        windows = _pairs(d["windows"], "series.windows", MAX_OPEN_WINDOWS, 2)
        through = _pairs(d["through"], "series.through", MAX_SOURCES, 3)
        closed = d["closed_until_ns"]
        return cls(
            service=text(d["service"], "series.service"),
            operation=text(d["operation"], "series.operation"),
            windows={int64(s, "series.windows[]"): WindowStats.from_dict(w) for s, w in windows},
            through={
                count(p, "series.through[]", MAX_SOURCES): (
                    count(last, "series.through[]"),
                    _starts(st),
                )
                for p, last, st in through
            },
            closed_until_ns=None if closed is None else int64(closed, "series.closed_until_ns"),
            empty_run=count(d["empty_run"], "series.empty_run"),
            pending_late=count(d["pending_late"], "series.pending_late"),
        )


#: Bounds on a stored series (far above what the assembler keeps: it closes windows
#: within the allowed lateness, and sources are input partitions).
MAX_OPEN_WINDOWS = 100_000
MAX_SOURCES = 100_000


def _pairs(value: object, where: str, limit: int, width: int) -> list[Sequence[Any]]:
    if not isinstance(value, list) or len(value) > limit:
        raise StateError("schema", f"{where}: a list of at most {limit}")
    return [items(v, f"{where}[]", width) for v in value]


def _starts(value: object) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_OPEN_WINDOWS:
        raise StateError("schema", f"series.through[]: at most {MAX_OPEN_WINDOWS} window starts")
    return tuple(int64(v, "series.through[]") for v in value)
