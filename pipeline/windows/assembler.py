"""Final window assembly: merge partials exactly once, close windows by watermark.

:class:`WindowAssembler` takes :class:`~pipeline.windows.partial.Partial`
values from any number of source partitions, possibly replayed, and emits each
(service, operation, window) once as a :class:`ClosedWindow`.

Watermark (event time). A partial carries the max event time of its cut. Two
watermarks are kept, both in event time, both never going backwards:

* Per source partition, over all series. A cut's max event time only counts
  for its source once a partial of a LATER cut of that source arrives (until
  then, the source counts with the lowest window start of its first cut). The
  global watermark is the MIN of those over the sources that are not QUIET, so
  a lagging input partition, e.g. one catching up after an outage, holds
  windows open instead of turning its spans late.
* Per series, over that series' own partials. Partials are keyed by series, so
  the partials of ONE series from one source arrive in cut order and, within a
  cut, in window order; the partials of one cut as a whole do NOT: they spread
  over the partials partitions, which the window stage drains at different
  paces. While a backlog is consumed one cut spans many windows, and a later cut
  of a source seen through a fast partition must not make the rest of an
  earlier cut, still queued on a slow partition, late. So a series' channel from
  a source vouches only for what that series has shown: the max event time of
  its earlier cuts and, within its latest cut, the window start reached. A
  series closes by the MIN of the global watermark and its channels that are
  not quiet; a series absent from a source's traffic only follows the global
  watermark.

Quiet. A source (or channel) not heard from for ``idle_close_seconds`` of
processing time is quiet, and stops holding the watermark back, unless the
stream runs faster than the wall clock meanwhile: if the highest event time
seen moved on by more than ``BACKLOG_PACE`` times the processing time elapsed
since it was last heard from, a backlog is being consumed and its silence more
likely means its input partition waits behind the others' fetched records (the
consumer serves whole fetched chunks partition by partition) than that it has
no data: it keeps holding the watermark back until its records come. Input
partitions are numbered densely, so a source numbered below one heard from
but not heard from itself yet counts as silent since the first partial: while
it is not quiet, the global watermark stays put.

When every source has been idle for ``idle_close_seconds``, the global
watermark becomes the lowest event time reached by the sources active just
before the pause (those heard from within ``idle_close_seconds`` of the last
partial) plus the processing time elapsed since the last partial arrived:
event time is assumed to flow on with the wall clock, which lets the last
windows of a stopped stream close, while a source that was behind when
everything paused (a stall of the window stage itself looks the same) does not
see its backlog turned late.

Startup hold. Source bookkeeping lives in memory, so after a (re)start the
watermark stays put for ``startup_hold_seconds`` after the first partial:
otherwise the first source heard from would set a watermark that a lagging
source, heard from a moment later, could no longer hold back. Likewise per
series: a series' watermark stays put for ``startup_hold_seconds`` after its
first partial (its other sources' partials may be queued behind on its
partials partition), and the first partial of a series never seen before is
never late (nothing of it was closed). A series that :meth:`~WindowAssembler.reload`
loads for the first time (its partials partition moved here in a rebalance, e.g.
from a worker that died) starts over the same way: its partials may be queued
behind the window stage that stopped, and this worker's watermark, driven by
other partitions, says nothing about them. Closed windows stay closed.

Holding. A source whose ingest is alive but paused (a ClickHouse outage stops
consumption, so no partials come) sends :class:`Hold` markers to every
partials partition. A held source counts as heard from: it is not quiet, and
the stream does not count as stopped, so windows wait for its backlog instead
of turning it late. Nor are its channels: the first cut after the pause spans
the backlog, and a series' partials of it may wait on a slow partials partition.
Markers stop with the pause, or with the worker.

Restart without traffic. A worker restarted after its input ended recovers
open windows from its table but may never receive another partial. Once it has
held recovered series for ``idle_close_seconds + startup_hold_seconds`` without
any partial, the watermark becomes the highest recovered open window start plus
the processing time since they were loaded, as in the idle rule above.

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
>>> clock.advance(60)  # idle: the watermark follows the wall clock, 95 s + 60 s
>>> [(w.window_start_ns // 10**9, w.requests, w.p50_ms) for w in asm.close_ready()]
[(0, 2, 10.0), (60, 1, 10.0)]
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pipeline.checked import StateError
from pipeline.clock import Clock
from pipeline.rejections import Rejections
from pipeline.windows.hold import Hold
from pipeline.windows.partial import NS_PER_S, Partial, window_start_ns
from pipeline.windows.series import ClosedWindow, SeriesState

#: Event seconds per processing second above which the stream counts as a backlog.
BACKLOG_PACE = 2.0

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
    #: the highest event time seen from any source when this one was last heard from
    frontier_ns: int
    provisional: bool = True
    #: processing time of the last :class:`Hold` marker (None: never held)
    held_at: float | None = None

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


@dataclass
class _Channel:
    """One series' partials from one source: they arrive in cut order, then window order."""

    latest_offset: int
    latest_ns: int
    #: highest window start of the latest cut: the rest of that cut starts no lower
    window_ns: int
    seen_at: float
    #: the highest event time seen from any source when this channel was last heard from
    frontier_ns: int
    #: max event time of this series' earlier cuts (None before its second cut)
    done_ns: int | None = None

    @property
    def watermark_ns(self) -> int:
        return self.window_ns if self.done_ns is None else max(self.done_ns, self.window_ns)

    def observe(self, partial: Partial, now: float) -> None:
        if partial.last_offset > self.latest_offset:
            done = self.latest_ns if self.done_ns is None else max(self.done_ns, self.latest_ns)
            self.done_ns = done
            self.latest_offset = partial.last_offset
            self.latest_ns = partial.watermark_ns
            self.window_ns = partial.window_start_ns
        elif partial.last_offset == self.latest_offset:
            self.window_ns = max(self.window_ns, partial.window_start_ns)
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
        #: Processing time a (re)started assembler first held recovered series, before any partial.
        self._recovered_at: float | None = None
        self.max_empty_windows = max_empty_windows
        self.max_exemplars = max_exemplars
        self._store: Store = {} if store is None else store
        self.rejections = Rejections("windows")
        self._series: dict[str, SeriesState] = {}
        self._sources: dict[int, _Source] = {}
        self._watermark_ns: int | None = None
        self._frontier_ns = 0
        self._start_frontier_ns = 0
        #: Processing time when the event-time frontier last moved forward.
        self._frontier_moved_at = 0.0
        #: series key -> source partition -> channel, and each series' watermark
        self._channels: dict[str, dict[int, _Channel]] = {}
        self._series_wm: dict[str, int] = {}
        self._series_seen_at: dict[str, float] = {}
        #: when each series was taken over (loaded by a reload without having been loaded)
        self._loaded_at: dict[str, float] = {}
        self.merged = 0
        self.duplicates = 0
        self.late_partials = 0
        self.late_spans = 0
        self.reload()

    def reload(self) -> None:
        """Re-read every series from the store (after recovery or a rebalance).

        A series loaded now that was not loaded before was taken over (or
        recovered): its partials may be queued behind a stalled or dead window
        stage, so its watermark starts over, as after a restart (module doc).
        """
        before = self._series
        loaded = ((key, self._stored(key)) for key in list(self._store))
        self._series = {key: state for key, state in loaded if state is not None}
        now = self.clock.now()
        if self._started_at is None and self._recovered_at is None and self._series:
            self._recovered_at = now
        for key in self._series.keys() - before.keys():
            self._channels.pop(key, None)
            self._series_wm.pop(key, None)
            self._series_seen_at.pop(key, None)
            self._loaded_at[key] = now
        for key in before.keys() - self._series.keys():
            self._loaded_at.pop(key, None)

    def _stored(self, key: str) -> SeriesState | None:
        """The stored series, or None; a value that does not parse is rejected and deleted.

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

    def state(self, service: str, operation: str) -> SeriesState | None:
        """The current state of one series (for inspection and tests)."""
        return self._series.get(series_key(service, operation))

    def merge(self, partial: Partial) -> MergeResult:
        """Take in one partial exactly once; see the module doc for LATE and DUPLICATE."""
        if partial.window_end_ns - partial.window_start_ns != self.window_ns:
            raise ValueError(f"partial window size differs from {self.window_ns} ns")
        key = series_key(partial.service, partial.operation)
        watermark = self._series_watermark(key)
        self._observe(key, partial)
        # A series this worker has not loaded yet (just assigned, recovered from the
        # changelog, reload still to come) must continue its stored state, never restart.
        state = (
            self._series.get(key)
            or self._stored(key)
            or SeriesState(partial.service, partial.operation)
        )
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

    def _observe(self, key: str, partial: Partial) -> None:
        source = self._sources.get(partial.source_partition)
        now = self.clock.now()
        if self._started_at is None:
            self._started_at = now
            self._frontier_ns = self._start_frontier_ns = partial.watermark_ns
        if partial.watermark_ns > self._frontier_ns or self._frontier_moved_at == 0.0:
            self._frontier_moved_at = now
        self._frontier_ns = max(self._frontier_ns, partial.watermark_ns)
        if source is None:
            source = self._sources[partial.source_partition] = _Source(
                partial.last_offset, partial.watermark_ns, now, partial.window_start_ns, 0
            )
        else:
            source.observe(partial, now)
        source.frontier_ns = self._frontier_ns
        self._series_seen_at.setdefault(key, now)
        channels = self._channels.setdefault(key, {})
        channel = channels.get(partial.source_partition)
        if channel is None:
            channel = channels[partial.source_partition] = _Channel(
                partial.last_offset, partial.watermark_ns, partial.window_start_ns, now, 0
            )
        else:
            channel.observe(partial, now)
        channel.frontier_ns = self._frontier_ns

    def hold(self, marker: Hold) -> bool:
        """A paused source is alive: it keeps holding the watermark back (module doc).

        True when this starts a hold (the source was not held a moment ago).
        """
        now = self.clock.now()
        source = self._sources.get(marker.source_partition)
        if source is None:
            # Held before any of its partials came (a pause right after the start): it
            # holds the watermark where it is until its records arrive.
            floor = self._watermark_ns
            if floor is None:
                floor = min((s.applied_ns for s in self._sources.values()), default=None)
            if floor is None:
                return False  # nothing heard since the (re)start: the startup hold covers it
            source = self._sources[marker.source_partition] = _Source(-1, floor, now, floor, 0)
        starts = source.held_at is None or now - source.held_at >= self.idle_close_seconds
        source.seen_at = source.held_at = now
        source.frontier_ns = self._frontier_ns
        return starts

    def _quiet(self, entry: _Source | _Channel, now: float, held_at: float | None = None) -> bool:
        """Silent for ``idle_close_seconds`` while the stream flows at about wall-clock pace.

        ``held_at``: the last Hold of the entry's source; a held source and its
        channels are not quiet (module doc).
        """
        if held_at is not None and now - held_at < self.idle_close_seconds:
            return False
        return self._quiet_since(entry.seen_at, entry.frontier_ns, now)

    def _held_at(self, source: int) -> float | None:
        entry = self._sources.get(source)
        return None if entry is None else entry.held_at

    def _quiet_since(self, seen_at: float, frontier_ns: int, now: float) -> bool:
        silent = now - seen_at
        if silent < self.idle_close_seconds:
            return False
        if now - self._frontier_moved_at >= self.idle_close_seconds:
            # The whole stream has stopped: nothing is queued behind a silent entry any
            # more. Without this, an entry last heard early in a long backlog would hold
            # its windows for half the backlog's event-time span after the backlog ends.
            return True
        return self._frontier_ns - frontier_ns <= BACKLOG_PACE * silent * NS_PER_S

    def _unheard_holds(self, now: float) -> bool:
        """True while a source numbered below a known one is unheard of and not quiet."""
        assert self._started_at is not None
        if len(self._sources) > max(self._sources):
            return False  # 0..max all heard from
        return not self._quiet_since(self._started_at, self._start_frontier_ns, now)

    def watermark_ns(self) -> int | None:
        """The global event-time watermark now (None before any partial); never decreases."""
        now = self.clock.now()
        if self._started_at is None:
            return self._recovered_watermark(now)
        if now - self._started_at < self.startup_hold_seconds:
            return self._watermark_ns
        sources = self._sources.values()
        last_seen = max(s.seen_at for s in sources)
        idle_for = now - last_seen
        if idle_for >= self.idle_close_seconds:
            active = [s for s in sources if last_seen - s.seen_at < self.idle_close_seconds]
            candidate = min(s.latest_ns for s in active) + int(idle_for * NS_PER_S)
        elif self._unheard_holds(now):
            return self._watermark_ns
        else:
            candidate = min(s.applied_ns for s in sources if not self._quiet(s, now, s.held_at))
        if self._watermark_ns is None or candidate > self._watermark_ns:
            self._watermark_ns = candidate
        return self._watermark_ns

    def _recovered_watermark(self, now: float) -> int | None:
        """Before any partial: recovered windows follow the wall clock (module doc).

        The highest open window start stands in for the last event time: no source
        bookkeeping survives a restart.
        """
        waited = self.idle_close_seconds + self.startup_hold_seconds
        if self._recovered_at is None or now - self._recovered_at < waited:
            return self._watermark_ns
        starts = [start for state in self._series.values() for start in state.windows]
        if not starts:
            return self._watermark_ns
        candidate = max(starts) + int((now - self._recovered_at) * NS_PER_S)
        if self._watermark_ns is None or candidate > self._watermark_ns:
            self._watermark_ns = candidate
        return self._watermark_ns

    def series_watermark_ns(self, service: str, operation: str) -> int | None:
        """The watermark that closes this series' windows (None before any partial)."""
        return self._series_watermark(series_key(service, operation))

    def _series_watermark(self, key: str) -> int | None:
        """Global watermark, held back by the series' channels heard from recently."""
        watermark = self.watermark_ns()
        now = self.clock.now()
        seen_at = self._series_seen_at.get(key)
        if seen_at is None and (key not in self._series or self._taking_over(key, now)):
            # A new series: nothing of it can be late yet. A series just taken over:
            # its first partial starts its startup hold, like a new one's.
            return self._series_wm.get(key)
        if watermark is None or (seen_at is not None and now - seen_at < self.startup_hold_seconds):
            return self._series_wm.get(key)
        channels = self._channels.get(key, {}).items()
        candidate = min(
            (c.watermark_ns for p, c in channels if not self._quiet(c, now, self._held_at(p))),
            default=watermark,
        )
        candidate = min(candidate, watermark)
        before = self._series_wm.get(key)
        if before is None or candidate > before:
            self._series_wm[key] = candidate
            return candidate
        return before

    def _taking_over(self, key: str, now: float) -> bool:
        """True for ``startup_hold_seconds`` after a reload took the series over."""
        loaded_at = self._loaded_at.get(key)
        return loaded_at is not None and now - loaded_at < self.startup_hold_seconds

    def close_ready(self) -> list[ClosedWindow]:
        """Close every window the watermark has passed, ordered by (start, service, operation)."""
        if self.watermark_ns() is None:
            return []
        closed: list[ClosedWindow] = []
        for key in sorted(self._series):
            watermark = self._series_watermark(key)
            if watermark is None:
                continue  # a series still in its startup hold
            last_start = window_start_ns(
                watermark - self.lateness_ns - self.window_ns, self.window_ns
            )
            state = self._series[key]
            before = state.closed_until_ns
            closed.extend(state.close(last_start, self.window_ns, self.max_empty_windows))
            if state.dormant(self.max_empty_windows):
                del self._series[key]
                self._loaded_at.pop(key, None)
                self._store.pop(key, None)
                self._forget_channels(key)
            elif state.closed_until_ns != before:
                self._save(key, state)
        closed.sort(key=lambda w: (w.window_start_ns, w.service, w.operation))
        return closed

    def _forget_channels(self, key: str) -> None:
        """Drop a forgotten series' channels once none has been heard from recently."""
        now = self.clock.now()
        channels = self._channels.get(key, {})
        if all(self._quiet(c, now) for c in channels.values()):
            self._channels.pop(key, None)
            self._series_seen_at.pop(key, None)

    def _save(self, key: str, state: SeriesState) -> None:
        self._series[key] = state
        self._store[key] = state.to_dict()
