"""RED statistics of one series in one window, shared by partial and final aggregation.

:class:`WindowStats` counts requests and errors, keeps the latency sketch, the
maximum duration and a few exemplar traces. Everything merges
order-independently, so summing partials from any number of source
partitions gives what one aggregator over all spans would have given.

>>> w = WindowStats()
>>> w.add(25_000_000, False, "a" * 32)
>>> w.add(3_000_000, True, "b" * 32)
>>> w.requests, w.errors, w.max_ms, [e.trace_id[0] for e in w.exemplars]
(2, 1, 25.0, ['b', 'a'])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from pipeline.checked import StateError, count, flag, items, record
from pipeline.windows.latency_sketch import LatencySketch

NS_PER_MS = 1_000_000
#: Bounds on what a stored or received window may claim (the pipeline keeps 3 exemplars
#: of 32-hex-digit trace ids).
MAX_EXEMPLARS = 100
MAX_TRACE_ID = 64


class Exemplar(NamedTuple):
    """A trace worth looking at for this window; JSON-encodes as ``[trace_id, ns, error]``."""

    trace_id: str
    duration_ns: int
    is_error: bool

    @property
    def rank(self) -> tuple[bool, int, str]:
        """Sort key: error traces first, then the slowest, ties by trace id."""
        return (not self.is_error, -self.duration_ns, self.trace_id)


def exemplars(value: object, limit: int) -> tuple[Exemplar, ...]:
    """Checked ``[trace_id, duration_ns, is_error]`` lists, at most ``limit`` of them."""
    if not isinstance(value, list) or len(value) > limit:
        raise StateError("schema", f"exemplars: a list of at most {limit}")
    out = []
    for item in value:
        trace_id, duration_ns, is_error = items(item, "exemplars[]", 3)
        if not isinstance(trace_id, str) or len(trace_id) > MAX_TRACE_ID:
            raise StateError("schema", f"exemplars[]: a trace id of at most {MAX_TRACE_ID} chars")
        out.append(
            Exemplar(trace_id, count(duration_ns, "exemplars[]"), flag(is_error, "exemplars[]"))
        )
    return tuple(out)


def best_exemplars(candidates: Iterable[Exemplar], limit: int) -> tuple[Exemplar, ...]:
    """The ``limit`` best candidates, one per trace (its best span), in rank order."""
    best: dict[str, Exemplar] = {}
    for cand in candidates:
        kept = best.get(cand.trace_id)
        if kept is None or cand.rank < kept.rank:
            best[cand.trace_id] = cand
    return tuple(sorted(best.values(), key=lambda e: e.rank)[:limit])


#: Thresholds one stored window may count (see ``pipeline.windows.partial.MAX_THRESHOLDS``).
MAX_UNDER = 64


def _under(value: object) -> list[tuple[int, int, int]]:
    if not isinstance(value, list) or len(value) > MAX_UNDER:
        raise StateError("schema", f"stats.under: a list of at most {MAX_UNDER}")
    rows = [items(v, "stats.under[]", 3) for v in value]
    out = [(count(t, "stats.under[]"), count(n, "stats.under[]"), count(c, "stats.under[]"))
           for t, n, c in rows]  # fmt: skip
    if len({t for t, _, _ in out}) != len(out):
        raise StateError("schema", "stats.under: a threshold twice")
    return out


class WindowStats:
    """Mutable RED accumulator for one (service, operation, window)."""

    __slots__ = ("errors", "exemplars", "max_exemplars", "max_ns", "requests", "sketch", "under")

    def __init__(self, max_exemplars: int = 3, sketch: LatencySketch | None = None) -> None:
        self.requests = 0
        self.errors = 0
        self.max_ns = 0
        self.sketch = LatencySketch() if sketch is None else sketch
        self.max_exemplars = max_exemplars
        self.exemplars: tuple[Exemplar, ...] = ()
        #: threshold_ns -> (requests at most that long, requests counted for it): partials
        #: count only the thresholds their worker's SLO file names, so coverage can differ.
        self.under: dict[int, tuple[int, int]] = {}

    @property
    def max_ms(self) -> float:
        """The slowest span's duration in milliseconds."""
        return self.max_ns / NS_PER_MS

    def add(self, duration_ns: int, is_error: bool, trace_id: str) -> None:
        """Count one span."""
        self.requests += 1
        if is_error:
            self.errors += 1
        if duration_ns > self.max_ns:
            self.max_ns = duration_ns
        self.sketch.add(duration_ns / NS_PER_MS)
        kept = self.exemplars
        if len(kept) >= self.max_exemplars:
            # Per-span fast path: strictly worse than the worst kept exemplar
            # (ties go the slow way so the trace-id tie-break stays exact).
            worst = kept[-1]
            if worst.is_error > is_error or (
                worst.is_error == is_error and duration_ns < worst.duration_ns
            ):
                return
        self.exemplars = best_exemplars(
            (*kept, Exemplar(trace_id, duration_ns, is_error)), self.max_exemplars
        )

    def merge(self, other: WindowStats) -> None:
        """Add everything ``other`` counted."""
        self.requests += other.requests
        self.errors += other.errors
        self.max_ns = max(self.max_ns, other.max_ns)
        self.sketch.merge(other.sketch)
        self.exemplars = best_exemplars((*self.exemplars, *other.exemplars), self.max_exemplars)
        for threshold, (n, covered) in other.under.items():
            mine, mine_covered = self.under.get(threshold, (0, 0))
            self.under[threshold] = (mine + n, mine_covered + covered)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (exemplars as ``[trace_id, duration_ns, is_error]`` lists);
        ``under`` as ``[threshold_ns, n, covered]`` lists, only when there are any."""
        data = {
            "requests": self.requests,
            "errors": self.errors,
            "max_ns": self.max_ns,
            "sketch": self.sketch.to_dict(),
            "max_exemplars": self.max_exemplars,
            "exemplars": [list(e) for e in self.exemplars],
        }
        if self.under:
            data["under"] = [[t, n, c] for t, (n, c) in sorted(self.under.items())]
        return data

    @classmethod
    def from_dict(cls, data: object) -> WindowStats:
        """Rebuild from :meth:`to_dict` output, checked (``StateError``: it comes from Kafka)."""
        keys = ["requests", "errors", "max_ns", "sketch", "max_exemplars", "exemplars"]
        under: list[Any] = []
        if isinstance(data, dict) and "under" in data:  # absent in state written before SLOs
            data = dict(data)
            under = _under(data.pop("under"))
        d = record(data, "stats", keys)
        limit = count(d["max_exemplars"], "stats.max_exemplars", MAX_EXEMPLARS)
        stats = cls(limit, LatencySketch.from_dict(d["sketch"]))
        stats.requests = count(d["requests"], "stats.requests")
        stats.errors = count(d["errors"], "stats.errors", stats.requests)
        stats.max_ns = count(d["max_ns"], "stats.max_ns")
        stats.exemplars = exemplars(d["exemplars"], limit)
        for threshold, n, covered in under:
            if not n <= covered <= stats.requests:
                raise StateError("schema", "stats.under: counts beyond requests")
            stats.under[threshold] = (n, covered)
        return stats

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowStats):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable
