"""What the watermark (:mod:`pipeline.windows.watermark`) keeps per source, channel and lane.

Plain bookkeeping, in memory only (rebuilt by traffic): each entry hears of
partials (:class:`Arriving`) and says what it vouches for; the rules that use
them are numbered in the watermark's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol


class Arriving(Protocol):
    """What the watermark reads of a partial (a :class:`~pipeline.windows.partial.Partial`)."""

    @property
    def source_partition(self) -> int: ...
    @property
    def last_offset(self) -> int:
        """The cut: the source's last input offset in it."""
        ...

    @property
    def window_start_ns(self) -> int: ...
    @property
    def watermark_ns(self) -> int:
        """The cut's max event time."""
        ...


class Arrival(NamedTuple):
    """The four facts of one partial the watermark reads, on their own."""

    source_partition: int
    last_offset: int
    window_start_ns: int
    watermark_ns: int


@dataclass
class Source:
    """Bookkeeping of one source partition (in memory only: rebuilt by traffic)."""

    latest_offset: int
    latest_ns: int
    seen_at: float
    #: what the source vouches for (rule 1)
    applied_ns: int
    #: the highest event time seen from any source when this one was last heard from
    frontier_ns: int
    provisional: bool = True
    #: processing time of the last :class:`Hold` marker (None: never held)
    held_at: float | None = None

    def observe(self, partial: Arriving, now: float) -> None:
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
class Channel:
    """One series' partials from one source (rule 6)."""

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

    def observe(self, partial: Arriving, now: float) -> None:
        if partial.last_offset > self.latest_offset:
            done = self.latest_ns if self.done_ns is None else max(self.done_ns, self.latest_ns)
            self.done_ns = done
            self.latest_offset = partial.last_offset
            self.latest_ns = partial.watermark_ns
            self.window_ns = partial.window_start_ns
        elif partial.last_offset == self.latest_offset:
            self.window_ns = max(self.window_ns, partial.window_start_ns)
        self.seen_at = now


@dataclass
class Lane:
    """One source's partials on one partials partition (rule 10)."""

    latest_offset: int
    latest_ns: int
    seen_at: float
    frontier_ns: int
    #: max event time of the source's cuts before the latest one seen on the lane
    done_ns: int | None = None

    def observe(self, partial: Arriving, now: float) -> None:
        if partial.last_offset > self.latest_offset:
            if self.latest_offset >= 0:
                done = self.latest_ns if self.done_ns is None else max(self.done_ns, self.latest_ns)
                self.done_ns = done
            self.latest_offset = partial.last_offset
            self.latest_ns = partial.watermark_ns
        elif partial.last_offset == self.latest_offset:
            self.latest_ns = max(self.latest_ns, partial.watermark_ns)
        self.seen_at = now
