"""Final window assembly: merge partials exactly once, close windows by watermark.

:class:`WindowAssembler` takes :class:`~pipeline.windows.partial.Partial`
values from any number of source partitions, possibly replayed, and emits each
(service, operation, window) once as a :class:`ClosedWindow`.

Watermark (event time). A partial carries the max event time of its cut. That
value only counts for a source once a partial of a LATER cut of the same
source arrives: the partials of one cut reach the assembler one by one (one per
series and window), and the cut's own watermark must not make its remaining
partials late (until its second cut, a source counts with the lowest window
start of its first cut). The assembler's watermark is the MIN of those source
watermarks over the sources heard from in the last ``idle_close_seconds`` of
processing time, so a lagging
partition, e.g. one catching up after an outage, holds windows open instead of
turning its spans late. It never goes backwards. When every source has been
idle for ``idle_close_seconds``, the watermark becomes the highest event time
seen plus the processing time elapsed since the last partial arrived: event
time is assumed to flow on with the wall clock, which lets the last windows of
a stopped stream close.

Startup hold. Source bookkeeping lives in memory, so after a (re)start the
watermark stays put for ``startup_hold_seconds`` after the first partial:
otherwise the first source heard from would set a watermark that a lagging
source, heard from a moment later, could no longer hold back.

A window closes once ``window_end + allowed_lateness <= watermark``. A partial
for a closed window is LATE: its span count is added to ``late_spans`` of the
series' next closed window and to :attr:`WindowAssembler.late_spans`.

Empty windows. After a series has been seen, windows with no partials close as
zero-request windows (traffic-drop detection needs them), at most
``max_empty_windows`` in a row; a series that has been empty that long, with
nothing pending, is forgotten (its state deleted), and restarts with its next
partial.

>>> from pipeline.testing.clock import ManualClock
>>> from pipeline.windows.partial import PartialAggregator
>>> from pipeline.model import Span
>>> def span(ts_s: float, ms: int) -> Span:
...     return Span(int(ts_s * 1e9), "ab" * 16, "cd" * 8, "", "", "GET /", "Server",
...                 "shop", {}, "", "", {}, ms * 1_000_000, "Unset", "", operation="GET /")
>>> agg = PartialAggregator(window_seconds=60, source_partition=0)
>>> for offset, ts in enumerate([1.0, 2.0, 95.0]):
...     _ = agg.add(span(ts, 10), offset)
>>> clock = ManualClock()
>>> asm = WindowAssembler(60, allowed_lateness_seconds=30, clock=clock, startup_hold_seconds=0)
>>> partials = agg.cut()
>>> [asm.merge(p).value for p in partials]
['merged', 'merged']
>>> asm.merge(partials[0]).value  # replayed after a crash
'duplicate'
>>> asm.close_ready()  # the first cut only vouches for its lowest window start
[]
>>> clock.advance(60)  # idle: the watermark follows the wall clock, 95 s + 60 s
>>> [(w.window_start_ns // 10**9, w.requests, w.p50_ms) for w in asm.close_ready()]
[(0, 2, 10.0), (60, 1, 10.0)]
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pipeline.clock import Clock
from pipeline.windows.partial import NS_PER_S, Partial, window_start_ns
from pipeline.windows.series import ClosedWindow, SeriesState

#: A JSON-safe store of series states, e.g. a Faust table (values are reassigned, never mutated).
Store = MutableMapping[str, dict[str, Any]]


class MergeResult(StrEnum):
    """What :meth:`WindowAssembler.merge` did with a partial."""

    MERGED = "merged"
    DUPLICATE = "duplicate"
    LATE = "late"


def series_key(service: str, operation: str) -> str:
    """The store key of a series: unambiguous for any characters in the names.

    >>> series_key("shop", "GET /")
    '["shop","GET /"]'
    """
    return json.dumps([service, operation], separators=(",", ":"))


@dataclass
class _Source:
    """Watermark bookkeeping of one source partition (in memory only: rebuilt by traffic)."""

    latest_offset: int
    latest_ns: int
    seen_at: float
    #: max event time of the cuts before the latest one; until a second cut, the
    #: lowest window start of the first cut (its spans are still arriving)
    applied_ns: int
    provisional: bool = True

    def observe(self, partial: Partial, now: float) -> None:
        if partial.last_offset > self.latest_offset:
            done = self.latest_ns if self.provisional else max(self.applied_ns, self.latest_ns)
            self.applied_ns, self.provisional = done, False
            self.latest_offset = partial.last_offset
            self.latest_ns = partial.watermark_ns
        elif partial.last_offset == self.latest_offset:
            self.latest_ns = max(self.latest_ns, partial.watermark_ns)
            if self.provisional:
                self.applied_ns = min(self.applied_ns, partial.window_start_ns)
        self.seen_at = now


class WindowAssembler:
    """Merges partials into per-series window state and closes windows by watermark."""

    def __init__(
        self,
        window_seconds: int,
        allowed_lateness_seconds: int,
        clock: Clock,
        *,
        idle_close_seconds: float | None = None,
        startup_hold_seconds: float | None = None,
        max_empty_windows: int = 10,
        max_exemplars: int = 3,
        store: Store | None = None,
    ) -> None:
        if window_seconds <= 0 or allowed_lateness_seconds < 0:
            raise ValueError("window_seconds must be > 0 and allowed_lateness_seconds >= 0")
        self.window_ns = window_seconds * NS_PER_S
        self.lateness_ns = allowed_lateness_seconds * NS_PER_S
        self.clock = clock
        #: Defaults to one window: cuts arrive far more often than that in a live stream.
        self.idle_close_seconds = (
            float(window_seconds) if idle_close_seconds is None else idle_close_seconds
        )
        #: Defaults to ``idle_close_seconds``: time for every live source to be heard from.
        self.startup_hold_seconds = (
            self.idle_close_seconds if startup_hold_seconds is None else startup_hold_seconds
        )
        self._started_at: float | None = None
        self.max_empty_windows = max_empty_windows
        self.max_exemplars = max_exemplars
        self._store: Store = {} if store is None else store
        self._series: dict[str, SeriesState] = {}
        self._sources: dict[int, _Source] = {}
        self._watermark_ns: int | None = None
        self.merged = 0
        self.duplicates = 0
        self.late_partials = 0
        self.late_spans = 0
        self.reload()

    def reload(self) -> None:
        """Re-read every series from the store (after recovery or a rebalance)."""
        self._series = {key: SeriesState.from_dict(value) for key, value in self._store.items()}

    def state(self, service: str, operation: str) -> SeriesState | None:
        """The current state of one series (for inspection and tests)."""
        return self._series.get(series_key(service, operation))

    def merge(self, partial: Partial) -> MergeResult:
        """Take in one partial exactly once; see the module doc for LATE and DUPLICATE."""
        if partial.window_end_ns - partial.window_start_ns != self.window_ns:
            raise ValueError(f"partial window size differs from {self.window_ns} ns")
        watermark = self.watermark_ns()
        self._observe(partial)
        key = series_key(partial.service, partial.operation)
        state = self._series.get(key) or SeriesState(partial.service, partial.operation)
        if state.is_duplicate(partial):
            self.duplicates += 1
            return MergeResult.DUPLICATE
        state.mark(partial)
        late = state.is_closed(partial.window_start_ns) or (
            watermark is not None and partial.window_end_ns + self.lateness_ns <= watermark
        )
        if late:
            state.pending_late += partial.requests
            self.late_partials += 1
            self.late_spans += partial.requests
        else:
            state.add(partial, self.max_exemplars)
            self.merged += 1
        self._save(key, state)
        return MergeResult.LATE if late else MergeResult.MERGED

    def _observe(self, partial: Partial) -> None:
        source = self._sources.get(partial.source_partition)
        now = self.clock.now()
        if self._started_at is None:
            self._started_at = now
        if source is None:
            self._sources[partial.source_partition] = _Source(
                partial.last_offset, partial.watermark_ns, now, partial.window_start_ns
            )
        else:
            source.observe(partial, now)

    def watermark_ns(self) -> int | None:
        """The event-time watermark now (None before any partial); never decreases."""
        now = self.clock.now()
        if self._started_at is None or now - self._started_at < self.startup_hold_seconds:
            return self._watermark_ns
        sources = self._sources.values()
        idle_for = now - max(s.seen_at for s in sources)
        if idle_for >= self.idle_close_seconds:
            candidate = max(s.latest_ns for s in sources) + int(idle_for * NS_PER_S)
        else:
            candidate = min(
                s.applied_ns for s in sources if now - s.seen_at < self.idle_close_seconds
            )
        if self._watermark_ns is None or candidate > self._watermark_ns:
            self._watermark_ns = candidate
        return self._watermark_ns

    def close_ready(self) -> list[ClosedWindow]:
        """Close every window the watermark has passed, ordered by (start, service, operation)."""
        watermark = self.watermark_ns()
        if watermark is None:
            return []
        last_start = window_start_ns(watermark - self.lateness_ns - self.window_ns, self.window_ns)
        closed: list[ClosedWindow] = []
        for key in sorted(self._series):
            state = self._series[key]
            before = state.closed_until_ns
            closed.extend(state.close(last_start, self.window_ns, self.max_empty_windows))
            if state.dormant(self.max_empty_windows):
                del self._series[key]
                self._store.pop(key, None)
            elif state.closed_until_ns != before:
                self._save(key, state)
        closed.sort(key=lambda w: (w.window_start_ns, w.service, w.operation))
        return closed

    def _save(self, key: str, state: SeriesState) -> None:
        self._series[key] = state
        self._store[key] = state.to_dict()
