"""The event-time watermark that closes windows: when is a window's data all in?

:class:`Watermark` knows nothing of window contents; it hears of every partial
(:meth:`~Watermark.observe`) and every :class:`~pipeline.windows.hold.Hold`,
and answers with a global watermark and a per-series one. Both are event-time
nanoseconds and never go backwards. The rules, each marked ``# Rule N`` where
it is implemented:

1. Sources. A source (input partition) counts with the max event time of its
   cuts before the latest one; before its second cut, with the lowest window
   start of its first cut (the rest of that cut may still be on its way).
2. Global = MIN over sources that are not quiet: a lagging source (one
   catching up after an outage) holds windows open instead of turning late.
3. Quiet. Silent for ``idle_close_seconds`` of processing time, unless the
   stream runs a backlog meanwhile (event time moved on by more than
   ``BACKLOG_PACE`` times the silence): a source then more likely waits
   behind the others' fetched records than has no data.
4. Dense sources. Input partitions are numbered densely: while a number below
   a known one is unheard of (and not quiet since the start), the global
   watermark stays put.
5. Stream stopped. Once every source is idle for ``idle_close_seconds``, the
   global watermark is the lowest event time of the sources active just before
   the pause plus the processing time since the last partial (event time flows
   on with the wall clock), so the last windows of a stopped stream close.
6. Channels. One series' partials from one source arrive in cut order, then
   window order; those of one cut spread over partials partitions drained at
   different paces. A channel vouches for its earlier cuts' max event time and
   the window start reached in its latest cut. A series closes by the MIN of
   the global watermark and its channels that are not quiet.
7. Startup hold. Bookkeeping lives in memory: for ``startup_hold_seconds`` after
   the first partial the global watermark stays put, and each series' stays put
   for that long after its own first partial. A series never seen has no
   watermark (nothing of it is late); a series taken over by a reload (a
   rebalance moved its partials partition here) starts over the same way.
8. Holding. A held source (ingest alive but paused, e.g. ClickHouse down) and
   its channels are not quiet and keep the stream from counting as stopped.
9. Restart without traffic. With recovered series and no partial for
   ``idle_close_seconds + startup_hold_seconds``, the global watermark is the
   highest open window start plus the processing time since the recovery.
10. Lanes. A series' partials all travel one partials partition (its lane);
   a source's partials on one lane arrive in cut order, but lanes are drained
   at different paces, so the global watermark (rule 2) may have passed what a
   source sent down a slow lane. For a source a series has no channel from
   yet (rule 6), the series closes no further than that source's lane vouches
   for: the max event time of its cuts before the latest one seen on the lane.
   A lane not heard from yet holds the series; a quiet lane (rule 3) does not.
   (A backlog read under CPU load: series whose lane lagged counted the first
   partials of a source late.)
11. Partials queued. While the window stage's own partitions still hold partials
   it has not read (``partials_queued``), nothing is quiet and the stream has not
   stopped (rules 3 and 5): the ingest may have read its whole backlog long ago,
   and the event-time frontier stands still once the fastest partials partition is
   drained, while the others still carry minutes of the stream.

>>> from pipeline.clock import ManualClock
>>> clock = ManualClock()
>>> wm = Watermark(clock, idle_close_seconds=60, startup_hold_seconds=0)
>>> wm.observe("k", Arrival(0, 1, 0, 95 * NS_PER_S))  # source 0's cut 1, windows 0 and 60
>>> wm.observe("k", Arrival(0, 1, 60 * NS_PER_S, 95 * NS_PER_S))
>>> wm.global_ns()  # one cut vouches only for its lowest window start (rule 1)
0
>>> clock.advance(60); wm.global_ns() // NS_PER_S  # stopped: 95 s + 60 s (rule 5)
155
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from pipeline.clock import Clock
from pipeline.windows.hold import Hold
from pipeline.windows.partial import NS_PER_S
from pipeline.windows.watermark_entries import Arrival, Arriving, Channel, Lane, Source

__all__ = ["BACKLOG_PACE", "Arrival", "Arriving", "Watermark"]

#: Event seconds per processing second above which the stream counts as a backlog (rule 3).
BACKLOG_PACE = 2.0


class Watermark:
    """Global and per-series event-time watermarks from partial and hold arrivals.

    ``open_window_starts``: the open window starts of the recovered series (rule 9).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        idle_close_seconds: float,
        startup_hold_seconds: float,
        open_window_starts: Callable[[], Iterable[int]] = tuple,
        partials_queued: Callable[[], bool] = lambda: False,
    ) -> None:
        self.clock = clock
        self._partials_queued = partials_queued
        #: (processing time, answer) of the last partials_queued() call (rule 11)
        self._queued_memo: tuple[float, bool] = (float("nan"), False)
        self.idle_close_seconds = idle_close_seconds
        self.startup_hold_seconds = startup_hold_seconds
        self._open_window_starts = open_window_starts
        self._started_at: float | None = None
        #: processing time recovered series were first held, before any partial (rule 9)
        self._recovered_at: float | None = None
        self._sources: dict[int, Source] = {}
        self._global_ns: int | None = None
        self._frontier_ns = 0
        self._start_frontier_ns = 0
        #: processing time when the event-time frontier last moved forward
        self._frontier_moved_at = 0.0
        #: series key -> source partition -> channel, and each series' watermark
        self._channels: dict[str, dict[int, Channel]] = {}
        self._series_ns: dict[str, int] = {}
        self._series_seen_at: dict[str, float] = {}
        #: when each series was taken over by a reload (rule 7)
        self._loaded_at: dict[str, float] = {}
        #: partials partition -> source partition -> lane, and each series' lane (rule 10)
        self._lanes: dict[int, dict[int, Lane]] = {}
        self._series_lane: dict[str, int] = {}

    # -- inputs ---------------------------------------------------------------------------
    def observe(self, key: str, partial: Arriving, lane: int | None = None) -> None:
        """One partial of series ``key`` arrived (merged, duplicate or late alike).

        ``lane``: the partials partition it was read from (rule 10; None: unknown).
        """
        now = self.clock.now()
        if self._started_at is None:
            self._started_at = now
            self._frontier_ns = self._start_frontier_ns = partial.watermark_ns
        if partial.watermark_ns > self._frontier_ns or self._frontier_moved_at == 0.0:
            self._frontier_moved_at = now
        self._frontier_ns = max(self._frontier_ns, partial.watermark_ns)
        p = partial.source_partition
        source = self._sources.get(p)
        if source is None:
            source = self._sources[p] = Source(
                partial.last_offset, partial.watermark_ns, now, partial.window_start_ns, 0
            )
        else:
            source.observe(partial, now)
        source.frontier_ns = self._frontier_ns
        self._series_seen_at.setdefault(key, now)
        channels = self._channels.setdefault(key, {})
        channel = channels.get(p)
        if channel is None:
            channel = channels[p] = Channel(
                partial.last_offset, partial.watermark_ns, partial.window_start_ns, now, 0
            )
        else:
            channel.observe(partial, now)
        channel.frontier_ns = self._frontier_ns
        if lane is not None:
            self._observe_lane(key, lane, partial, now)

    def _observe_lane(self, key: str, lane: int, partial: Arriving, now: float) -> None:
        """Rule 10: every (lane, source) pair known is tracked from the moment it could exist."""
        self._series_lane[key] = lane
        entry = self._lanes.get(lane, {}).get(partial.source_partition)
        if entry is None:  # a new lane or source: pairs unheard of hold from now on
            self._lanes.setdefault(lane, {})
            for lanes in self._lanes.values():
                for p in self._sources:
                    if p not in lanes:
                        lanes[p] = Lane(-1, 0, now, self._frontier_ns)
            entry = self._lanes[lane][partial.source_partition]
        entry.observe(partial, now)
        entry.frontier_ns = self._frontier_ns

    def hold(self, marker: Hold) -> bool:
        """A paused source is alive (rule 8); True when this starts a hold."""
        now = self.clock.now()
        source = self._sources.get(marker.source_partition)
        if source is None:
            # Held before any of its partials came: it holds the watermark where it is.
            floor = self._global_ns
            if floor is None:
                floor = min((s.applied_ns for s in self._sources.values()), default=None)
            if floor is None:
                return False  # nothing heard since the (re)start: rule 7 covers it
            source = self._sources[marker.source_partition] = Source(-1, floor, now, floor, 0)
        starts = source.held_at is None or now - source.held_at >= self.idle_close_seconds
        source.seen_at = source.held_at = now
        source.frontier_ns = self._frontier_ns
        return starts

    def reloaded(self, before: Collection[str], after: Collection[str]) -> None:
        """The loaded series changed from ``before`` to ``after`` (recovery, rebalance)."""
        now = self.clock.now()
        if self._started_at is None and self._recovered_at is None and after:
            self._recovered_at = now  # rule 9
        for key in set(after) - set(before):  # taken over: starts over (rule 7)
            self._channels.pop(key, None)
            self._series_ns.pop(key, None)
            self._series_seen_at.pop(key, None)
            self._loaded_at[key] = now
        for key in set(before) - set(after):
            self._loaded_at.pop(key, None)

    def forget(self, key: str) -> None:
        """A dormant series was dropped: its channels go once none was heard recently."""
        self._loaded_at.pop(key, None)
        now = self.clock.now()
        channels = self._channels.get(key, {})
        if all(self._quiet(c, now) for c in channels.values()):
            self._channels.pop(key, None)
            self._series_seen_at.pop(key, None)
            self._series_lane.pop(key, None)

    def held_at(self, source: int) -> float | None:
        """Processing time of the source's last Hold marker (None: never held)."""
        entry = self._sources.get(source)
        return None if entry is None else entry.held_at

    # -- outputs --------------------------------------------------------------------------
    def global_ns(self) -> int | None:
        """The global watermark now (None before any partial); never decreases."""
        now = self.clock.now()
        if self._started_at is None:
            return self._recovered(now)
        if now - self._started_at < self.startup_hold_seconds:  # rule 7
            return self._global_ns
        sources = self._sources.values()
        last_seen = max(s.seen_at for s in sources)
        idle_for = now - last_seen
        if idle_for >= self.idle_close_seconds and not self._queued(now):  # rules 5, 11
            active = [s for s in sources if last_seen - s.seen_at < self.idle_close_seconds]
            candidate = min(s.latest_ns for s in active) + int(idle_for * NS_PER_S)
        elif self._unheard_holds(now):  # rule 4
            return self._global_ns
        else:  # rule 2
            candidate = min(s.applied_ns for s in sources if not self._quiet(s, now, s.held_at))
        return self._raise_global(candidate)

    def series_ns(self, key: str, known: bool) -> int | None:
        """The watermark that closes series ``key``'s windows (None: none yet).

        ``known``: the series is loaded (it has state) on this worker.
        """
        watermark = self.global_ns()
        now = self.clock.now()
        seen_at = self._series_seen_at.get(key)
        if seen_at is None and (not known or self._taking_over(key, now)):
            return self._series_ns.get(key)  # rule 7: new, or just taken over
        if watermark is None or (seen_at is not None and now - seen_at < self.startup_hold_seconds):
            return self._series_ns.get(key)
        channels = self._channels.get(key, {}).items()
        candidate = min(  # rule 6
            (c.watermark_ns for p, c in channels if not self._quiet(c, now, self.held_at(p))),
            default=watermark,
        )
        candidate = min(candidate, watermark)
        bound = self._lane_bound(key, now)
        if bound is not None and bound < 0:  # rule 10: a lane that vouches nothing yet
            return self._series_ns.get(key)
        if bound is not None:
            candidate = min(candidate, bound)
        before = self._series_ns.get(key)
        if before is None or candidate > before:
            self._series_ns[key] = candidate
            return candidate
        return before

    # -- rules ----------------------------------------------------------------------------
    def _lane_bound(self, key: str, now: float) -> int | None:
        """Rule 10: what the series' lane vouches for the sources it has no channel from
        (None: no bound; -1: a lane that vouches nothing yet holds the series)."""
        lane = self._series_lane.get(key)
        if lane is None:
            return None
        channels = self._channels.get(key, {})
        bound: int | None = None
        for p, entry in self._lanes.get(lane, {}).items():
            if p in channels or self._quiet(entry, now, self.held_at(p)):
                continue
            vouched = -1 if entry.done_ns is None else entry.done_ns  # unheard: holds
            bound = vouched if bound is None else min(bound, vouched)
        return bound

    def _raise_global(self, candidate: int) -> int:
        if self._global_ns is None or candidate > self._global_ns:
            self._global_ns = candidate
        return self._global_ns

    def _recovered(self, now: float) -> int | None:
        """Rule 9: the highest open window start stands in for the last event time."""
        waited = self.idle_close_seconds + self.startup_hold_seconds
        if self._recovered_at is None or now - self._recovered_at < waited:
            return self._global_ns
        starts = list(self._open_window_starts())
        if not starts:
            return self._global_ns
        return self._raise_global(max(starts) + int((now - self._recovered_at) * NS_PER_S))

    def _quiet(
        self, entry: Source | Channel | Lane, now: float, held_at: float | None = None
    ) -> bool:
        """Rule 3, with rule 8: a source held recently (and its channels) is never quiet."""
        if held_at is not None and now - held_at < self.idle_close_seconds:
            return False
        return self._quiet_since(entry.seen_at, entry.frontier_ns, now)

    def _quiet_since(self, seen_at: float, frontier_ns: int, now: float) -> bool:
        silent = now - seen_at
        if silent < self.idle_close_seconds or self._queued(now):  # rule 11
            return False
        if now - self._frontier_moved_at >= self.idle_close_seconds:
            # The whole stream has stopped: nothing is queued behind a silent entry any
            # more. Otherwise an entry last heard early in a long backlog would hold its
            # windows for half the backlog's event-time span after the backlog ends.
            return True
        return self._frontier_ns - frontier_ns <= BACKLOG_PACE * silent * NS_PER_S

    def _queued(self, now: float) -> bool:
        """Rule 11, asked once per processing instant."""
        if self._queued_memo[0] != now:
            self._queued_memo = (now, self._partials_queued())
        return self._queued_memo[1]

    def _unheard_holds(self, now: float) -> bool:
        """Rule 4: a source numbered below a known one is unheard of and not quiet."""
        assert self._started_at is not None
        if len(self._sources) > max(self._sources):
            return False  # 0..max all heard from
        return not self._quiet_since(self._started_at, self._start_frontier_ns, now)

    def _taking_over(self, key: str, now: float) -> bool:
        """True for ``startup_hold_seconds`` after a reload took the series over (rule 7)."""
        loaded_at = self._loaded_at.get(key)
        return loaded_at is not None and now - loaded_at < self.startup_hold_seconds
