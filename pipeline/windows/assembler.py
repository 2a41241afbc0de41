"""Final window assembly: merge partials exactly once, close the windows the watermark passed.

:class:`WindowAssembler` takes :class:`~pipeline.windows.partial.Partial`
values from any number of source partitions, possibly replayed, and emits each
(service, operation, window) once as a :class:`ClosedWindow`. When a window's
data is all in is :class:`~pipeline.windows.watermark.Watermark`'s call. The
rules, each marked ``# Rule N`` where it is implemented:

1. Exactly once. A partial whose (source, cut) the series state has seen is a
   DUPLICATE (a replay after a crash) and changes nothing.
2. Continue, never restart. A series not loaded yet continues its stored state.
3. Late. A partial for a closed window (or one the series watermark passed by
   ``allowed_lateness``) is LATE: its span count goes to ``late_spans`` of the
   series' next closed window and to :attr:`WindowAssembler.late_spans`.
4. Close. A window closes once ``window_end + allowed_lateness <= watermark``.
5. Empty windows. After a series has been seen, windows with no partials close
   as zero-request windows (traffic-drop detection needs them), at most
   ``max_empty_windows`` in a row; a series empty that long, with nothing
   pending, is forgotten and restarts with its next partial.
6. Untrusted store. A stored value that does not parse is rejected and deleted.

>>> from pipeline.clock import ManualClock
>>> from pipeline.windows.partial import PartialAggregator
>>> from pipeline.model import Span
>>> from pipeline.otlp.heads import head_of
>>> def span(ts_s: float, ms: int) -> Span:
...     return head_of(Span(int(ts_s * 1e9), "ab" * 16, "cd" * 8, "", "", "GET /", "Server",
...                    "shop", {}, "", "", {}, ms * 1_000_000, "Unset", "", operation="GET /"))
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
>>> clock.advance(60)  # stopped: the watermark follows the wall clock, 95 s + 60 s
>>> [(w.window_start_ns // 10**9, w.requests, w.p50_ms) for w in asm.close_ready()]
[(0, 2, 10.0), (60, 1, 10.0)]
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, MutableMapping
from enum import StrEnum
from typing import Any

from pipeline.checked import StateError
from pipeline.clock import Clock
from pipeline.rejections import Rejections
from pipeline.windows.hold import Hold
from pipeline.windows.partial import NS_PER_S, Partial, window_start_ns
from pipeline.windows.series import ClosedWindow, SeriesState
from pipeline.windows.watermark import Watermark

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


class WindowAssembler:
    """Merges partials into per-series window state and closes windows by watermark.

    ``idle_close_seconds`` (default: one window), ``startup_hold_seconds``
    (default: ``idle_close_seconds``) and ``partials_queued`` (True while the
    stage's partials partitions hold unread records) configure the :attr:`watermark`.
    """

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
        partials_queued: Callable[[], bool] = lambda: False,
    ) -> None:
        if window_seconds <= 0 or allowed_lateness_seconds < 0:
            raise ValueError("window_seconds must be > 0 and allowed_lateness_seconds >= 0")
        self.window_ns = window_seconds * NS_PER_S
        self.lateness_ns = allowed_lateness_seconds * NS_PER_S
        idle = float(window_seconds) if idle_close_seconds is None else idle_close_seconds
        self.watermark = Watermark(
            clock,
            idle_close_seconds=idle,
            startup_hold_seconds=idle if startup_hold_seconds is None else startup_hold_seconds,
            open_window_starts=self._open_window_starts,
            partials_queued=partials_queued,
        )
        self.max_empty_windows = max_empty_windows
        self.max_exemplars = max_exemplars
        self._store: Store = {} if store is None else store
        self.rejections = Rejections("windows")
        self._series: dict[str, SeriesState] = {}
        self.merged = 0
        self.duplicates = 0
        self.late_partials = 0
        self.late_spans = 0
        self.reload()

    @property
    def clock(self) -> Clock:
        return self.watermark.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.watermark.clock = clock

    def reload(self) -> None:
        """Re-read every series from the store (after recovery or a rebalance)."""
        before = self._series
        loaded = ((key, self._stored(key)) for key in list(self._store))
        self._series = {key: state for key, state in loaded if state is not None}
        self.watermark.reloaded(before.keys(), self._series.keys())

    def _stored(self, key: str) -> SeriesState | None:
        """Rule 6: the stored series, or None; a value that does not parse is deleted.

        The store is restored from a changelog topic: untrusted. Deleting writes a
        tombstone, so the bad record is counted once and compacted away; its series
        starts over, every other one is unaffected.
        """
        try:
            value = self._store.get(key)
            if value is None:
                return None
            state = SeriesState.from_dict(value)
            if series_key(state.service, state.operation) != key:
                raise StateError("schema", "the series named in the value is not its key's")
            return state
        except StateError as exc:
            self.rejections.reject(key, exc, "deleted; the series starts over")
            with contextlib.suppress(KeyError):  # not pop(): it would read the value again
                del self._store[key]
            return None

    def _open_window_starts(self) -> list[int]:
        return [start for state in self._series.values() for start in state.windows]

    def state(self, service: str, operation: str) -> SeriesState | None:
        """The current state of one series (for inspection and tests)."""
        return self._series.get(series_key(service, operation))

    def hold(self, marker: Hold) -> bool:
        """A paused source keeps holding the watermark back; True when a hold starts."""
        return self.watermark.hold(marker)

    def merge(self, partial: Partial, lane: int | None = None) -> MergeResult:
        """Take in one partial exactly once (rules 1-3).

        ``lane``: the partials partition it was read from (the watermark's rule 10).
        """
        if partial.window_end_ns - partial.window_start_ns != self.window_ns:
            raise ValueError(f"partial window size differs from {self.window_ns} ns")
        key = series_key(partial.service, partial.operation)
        watermark = self.watermark.series_ns(key, key in self._series)
        self.watermark.observe(key, partial, lane)
        # Rule 2: a series this worker has not loaded yet (just assigned, recovered
        # from the changelog, reload still to come) continues its stored state.
        state = (
            self._series.get(key)
            or self._stored(key)
            or SeriesState(partial.service, partial.operation)
        )
        if state.is_duplicate(partial):  # rule 1
            self.duplicates += 1
            return MergeResult.DUPLICATE
        state.mark(partial)
        late = state.is_closed(partial.window_start_ns) or (  # rule 3
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

    def close_ready(self) -> list[ClosedWindow]:
        """Close every window the watermark has passed, ordered by (start, service, operation)."""
        if self.watermark.global_ns() is None:
            return []
        closed: list[ClosedWindow] = []
        for key in sorted(self._series):
            watermark = self.watermark.series_ns(key, known=True)
            if watermark is None:
                continue  # a series still in its startup hold
            # Rule 4: the last window with window_end + lateness <= watermark.
            last_start = window_start_ns(
                watermark - self.lateness_ns - self.window_ns, self.window_ns
            )
            state = self._series[key]
            before = state.closed_until_ns
            closed.extend(state.close(last_start, self.window_ns, self.max_empty_windows))
            if state.dormant(self.max_empty_windows):  # rule 5
                del self._series[key]
                self._store.pop(key, None)
                self.watermark.forget(key)
            elif state.closed_until_ns != before:
                self._save(key, state)
        closed.sort(key=lambda w: (w.window_start_ns, w.service, w.operation))
        return closed

    def _save(self, key: str, state: SeriesState) -> None:
        self._series[key] = state
        self._store[key] = state.to_dict()
