"""Per-source-partition partial aggregates of tumbling RED windows.

One :class:`PartialAggregator` runs per input partition. It adds spans in
offset order into (service, operation, window) accumulators; :meth:`cut`
hands them out as :class:`Partial` values covering an offset range and starts
afresh. The final assembler merges partials keyed by (service, operation).

Exactly-once merge over at-least-once delivery rests on two rules:

* Determinism: the same spans in the same offset order, cut at the same
  offset, give byte-identical partials (no clock, no dict-order dependence;
  the watermark is the max event time *of the cut*, not of the process life).
  So the caller records the cut offset (an intent) before sending; after a
  crash it replays and cuts at the same offset, and the assembler recognises
  the resent partials as duplicates by their ``(source_partition, last_offset)``.
* Skipping: offsets at or below ``skip_through`` (the last cut known to be fully
  sent) and at or below the previous cut are never aggregated again.

Spans of one Kafka record share its offset: cut only between records.

>>> from pipeline.model import Span
>>> from pipeline.otlp.heads import head_of
>>> def span(ts_s: float, ms: int, err: bool = False) -> SpanHead:
...     return head_of(Span(int(ts_s * 1e9), "ab" * 16, "cd" * 8, "", "", "GET /", "Server",
...                    "shop", {}, "", "", {}, ms * 1_000_000, "Unset", "",
...                    operation="GET /", is_error=err))
>>> agg = PartialAggregator(window_seconds=60, source_partition=0)
>>> for offset, s in enumerate([span(1.0, 10), span(2.0, 30, err=True), span(61.0, 5)]):
...     _ = agg.add(s, offset)
>>> [(p.window_start_ns // 10**9, p.requests, p.errors) for p in agg.cut()]
[(0, 2, 1), (60, 1, 0)]
>>> agg.add(span(3.0, 1), offset=2)  # already cut: a replay, skipped
False
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import native
from pipeline.checked import StateError, count, int64, items, number, parse_json, record, text
from pipeline.model import SpanHead
from pipeline.windows.latency_sketch import DEFAULT_MAX_BINS, LatencySketch
from pipeline.windows.red_stats import MAX_EXEMPLARS, NS_PER_MS, Exemplar, WindowStats, exemplars

NS_PER_S = 1_000_000_000
# The window sketch's bucket scale, computed as LatencySketch computes it.
_SKETCH_INV_LOG_GAMMA = 1.0 / math.log(LatencySketch().gamma)


def window_start_ns(timestamp_ns: int, window_ns: int) -> int:
    """Start of the tumbling window holding ``timestamp_ns`` (floor, also before 1970).

    >>> window_start_ns(119_999_999_999, 60 * NS_PER_S) // NS_PER_S
    60
    """
    return timestamp_ns - timestamp_ns % window_ns


@dataclass(frozen=True)
class Partial:
    """RED aggregate of one series in one window, from one source partition's offset range.

    ``first_offset..last_offset`` (inclusive) is the input range of the cut that
    produced it; ``watermark_ns`` is the max span start time in that cut. ``under``
    holds, for each latency threshold of an SLO on the service, ``(threshold_ns, n)``:
    ``n`` of the ``requests`` took at most the threshold (exact, every span counted).
    A partial without thresholds serializes as before the field existed.
    """

    service: str
    operation: str
    window_start_ns: int
    window_end_ns: int
    requests: int
    errors: int
    sketch: LatencySketch
    max_ms: float
    exemplars: tuple[Exemplar, ...]
    source_partition: int
    first_offset: int
    last_offset: int
    watermark_ns: int
    under: tuple[tuple[int, int], ...] = ()

    @property
    def series(self) -> tuple[str, str]:
        """The (service, operation) pair: the repartition key."""
        return (self.service, self.operation)

    def stats(self, max_exemplars: int) -> WindowStats:
        """A fresh accumulator holding this partial's counts (for merging)."""
        stats = WindowStats(max_exemplars, self.sketch.copy())
        stats.requests = self.requests
        stats.errors = self.errors
        stats.max_ns = round(self.max_ms * NS_PER_MS)
        stats.exemplars = self.exemplars[:max_exemplars]  # already ranked
        stats.under = {t: (n, self.requests) for t, n in self.under}
        return stats

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; ``under`` only when there are thresholds (older readers)."""
        data = {
            "service": self.service,
            "operation": self.operation,
            "window_start_ns": self.window_start_ns,
            "window_end_ns": self.window_end_ns,
            "requests": self.requests,
            "errors": self.errors,
            "sketch": self.sketch.to_dict(),
            "max_ms": self.max_ms,
            "exemplars": [list(e) for e in self.exemplars],
            "source_partition": self.source_partition,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "watermark_ns": self.watermark_ns,
        }
        if self.under:
            data["under"] = [list(pair) for pair in self.under]
        return data

    @classmethod
    def from_dict(cls, data: object) -> Partial:
        """Rebuild from :meth:`to_dict` output, checked: a partials record is untrusted.

        ``StateError`` (a ValueError) unless every field has its type and range, and
        the sketch the accuracy and size every worker writes (so it always merges).
        """
        under: tuple[tuple[int, int], ...] = ()
        if isinstance(data, dict) and "under" in data:
            data = dict(data)
            under = under_counts(data.pop("under"), "partial.under")
        d = record(data, "partial", _FIELDS)
        sketch = LatencySketch.from_dict(d["sketch"])
        if (sketch.gamma, sketch.max_bins) != (_SKETCH_GAMMA, DEFAULT_MAX_BINS):
            raise StateError("schema", "partial.sketch: not the pipeline's accuracy and size")
        requests = count(d["requests"], "partial.requests")
        first, last = count(d["first_offset"], "offset"), count(d["last_offset"], "offset")
        if first > last:
            raise StateError("schema", "partial: first_offset after last_offset")
        if any(n > requests for _, n in under):
            raise StateError("schema", "partial.under: more than requests")
        return cls(
            service=text(d["service"], "partial.service"),
            operation=text(d["operation"], "partial.operation"),
            window_start_ns=int64(d["window_start_ns"], "partial.window_start_ns"),
            window_end_ns=int64(d["window_end_ns"], "partial.window_end_ns"),
            requests=requests,
            errors=count(d["errors"], "partial.errors", requests),
            sketch=sketch,
            max_ms=number(d["max_ms"], "partial.max_ms", 0.0),
            exemplars=exemplars(d["exemplars"], MAX_EXEMPLARS),
            source_partition=count(d["source_partition"], "partial.source_partition", 2**31 - 1),
            first_offset=first,
            last_offset=last,
            watermark_ns=int64(d["watermark_ns"], "partial.watermark_ns"),
            under=under,
        )

    def to_json(self) -> bytes:
        """Canonical bytes (sorted keys, no spaces): equal partials give equal bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Partial:
        """Parse :meth:`to_json` output."""
        return cls.from_dict(parse_json(raw))


_FIELDS = [f.name for f in dataclasses.fields(Partial) if f.name != "under"]
_SKETCH_GAMMA = LatencySketch().gamma


class PartialAggregator:
    """Accumulates one source partition's spans into per-window partials until cut."""

    def __init__(
        self,
        window_seconds: int,
        source_partition: int,
        max_exemplars: int = 3,
        skip_through: int = -1,
        thresholds: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be > 0, got {window_seconds}")
        self.window_ns = window_seconds * NS_PER_S
        self.source_partition = source_partition
        self.max_exemplars = max_exemplars
        #: service -> latency thresholds (ns) whose spans at most that long are counted.
        self.thresholds = {k: tuple(v) for k, v in (thresholds or {}).items()} or None
        self._through = skip_through
        self._cut_known = skip_through >= 0
        self._acc: dict[tuple[str, str, int], Any] = {}
        self._first_offset: int | None = None
        self._last_offset: int | None = None
        self._watermark_ns: int | None = None

    @property
    def through(self) -> int:
        """Offsets at or below this are skipped (last cut or the given ``skip_through``)."""
        return self._through

    @property
    def pending_offset(self) -> int | None:
        """The last offset aggregated since the previous cut, or None."""
        return self._last_offset

    def add(self, span: SpanHead, offset: int, watermark_cap_ns: int | None = None) -> bool:
        """Aggregate one span read at ``offset``; False when skipped as already cut.

        A span starting after ``watermark_cap_ns`` (a clock running ahead) still
        counts in its own window, but moves the watermark only up to the cap, so
        it cannot make the on-time spans that follow it late.
        """
        return self.add_record((span,), offset, watermark_cap_ns)

    def add_record(
        self, spans: Sequence[SpanHead], offset: int, watermark_cap_ns: int | None = None
    ) -> bool:
        """:meth:`add` for every span of one record (all read at ``offset``), in one call.

        The per-span loop is the hot path of the ingest stage, so it runs natively
        (:func:`pipeline.native.window_add`; :func:`window_add_of` is the definition).
        """
        if offset <= self._through:
            return False
        if not spans:
            return True
        if self._last_offset is None:
            self._first_offset = offset
        elif offset < self._last_offset:
            raise ValueError(f"offset {offset} < previous offset {self._last_offset}")
        self._last_offset = offset
        self._watermark_ns = native.window_add(
            spans,
            self._acc,
            self.window_ns,
            watermark_cap_ns,
            self._watermark_ns,
            self.max_exemplars,
            _SKETCH_INV_LOG_GAMMA,
            DEFAULT_MAX_BINS,
            self.thresholds,
        )
        return True

    def cut(self, offset: int | None = None) -> list[Partial]:
        """Hand out and reset the partials, covering offsets up to ``offset``.

        ``offset`` defaults to the last aggregated one; give it explicitly to
        cover records that produced no spans, or to repeat a recorded intent.
        Partials come sorted by (service, operation, window start).
        """
        last = self._last_offset if offset is None else offset
        if last is None:
            return []
        if last <= self._through or (self._last_offset is not None and last < self._last_offset):
            raise ValueError(f"cut offset {last} is behind aggregated offsets")
        first = self._through + 1 if self._cut_known else self._first_offset
        partials = [
            self._partial(key, acc, first if first is not None else last, last)
            for key, acc in sorted(self._acc.items())
        ]
        self._through = last
        self._cut_known = True
        self._acc = {}
        self._first_offset = self._last_offset = self._watermark_ns = None
        return partials

    def _partial(self, key: tuple[str, str, int], acc: Any, first: int, last: int) -> Partial:
        service, operation, start = key
        assert self._watermark_ns is not None  # set by the add() that created acc
        return Partial(
            service=service,
            operation=operation,
            window_start_ns=start,
            window_end_ns=start + self.window_ns,
            requests=acc.requests,
            errors=acc.errors,
            sketch=LatencySketch.from_counts(acc.bins, acc.requests, acc.zeros, acc.min, acc.max),
            max_ms=acc.max_ns / NS_PER_MS,
            exemplars=tuple(Exemplar(*e) for e in acc.exemplars),
            source_partition=self.source_partition,
            first_offset=first,
            last_offset=last,
            watermark_ns=self._watermark_ns,
            under=tuple(acc.under),
        )


def under_counts(value: object, where: str) -> tuple[tuple[int, int], ...]:
    """Checked ``[[threshold_ns, n], ...]``, distinct thresholds, at most ``MAX_THRESHOLDS``."""
    if not isinstance(value, list) or len(value) > MAX_THRESHOLDS:
        raise StateError("schema", f"{where}: a list of at most {MAX_THRESHOLDS}")
    pairs = [items(v, f"{where}[]", 2) for v in value]
    out = tuple((count(t, f"{where}[]"), count(n, f"{where}[]")) for t, n in pairs)
    if len({t for t, _ in out}) != len(out):
        raise StateError("schema", f"{where}: a threshold twice")
    return out


#: Latency thresholds one service may have counted (distinct ``threshold_ms`` of its SLOs).
MAX_THRESHOLDS = 64


class RedAcc:
    """RED counts of one series in one window: the reference of the native ``RedAcc``.

    What :func:`window_add_of` fills; :meth:`PartialAggregator.cut` reads these
    fields (``bins`` keyed as :meth:`LatencySketch.add` keys them).
    """

    __slots__ = ("limits", "stats", "under_counts")

    def __init__(self, max_exemplars: int, max_bins: int, limits: Sequence[int] = ()) -> None:
        self.stats = WindowStats(max_exemplars, LatencySketch(max_bins=max_bins))
        self.limits = tuple(limits)
        self.under_counts = [0] * len(self.limits)

    @property
    def under(self) -> tuple[tuple[int, int], ...]:
        """``(threshold_ns, spans at most that long)`` in the thresholds' order."""
        return tuple(zip(self.limits, self.under_counts, strict=True))

    requests = property(lambda self: self.stats.requests)
    errors = property(lambda self: self.stats.errors)
    max_ns = property(lambda self: self.stats.max_ns)
    exemplars = property(lambda self: self.stats.exemplars)
    zeros = property(lambda self: self.stats.sketch.zeros)
    bins = property(lambda self: self.stats.sketch.bins)
    min = property(lambda self: self.stats.sketch.min)
    max = property(lambda self: self.stats.sketch.max)


def window_add_of(
    spans: Sequence[SpanHead],
    accumulators: dict[tuple[str, str, int], Any],
    window_ns: int,
    watermark_cap_ns: int | None,
    watermark: int | None,
    max_exemplars: int,
    inv_log_gamma: float,
    max_bins: int,
    thresholds: Mapping[str, Sequence[int]] | None = None,
) -> int | None:
    """The reference of ``native.window_add``: each span into its accumulator; the watermark.

    Every span counts as ``WindowStats.add(max(duration, 0), is_error, trace_id)``
    in the :class:`RedAcc` of its (service, operation, window start), created as
    needed; the watermark rises to each start time, at most to ``watermark_cap_ns``.
    ``inv_log_gamma`` is that of the default :class:`LatencySketch`, which keys the buckets.
    A new accumulator takes its service's ``thresholds`` (ns); a span counts under each
    one its ``max(duration, 0)`` does not exceed.
    """
    if window_ns <= 0 or max_bins < 1:
        raise ValueError("window_ns must be > 0 and max_bins >= 1")
    assert inv_log_gamma == _SKETCH_INV_LOG_GAMMA
    for span in spans:
        ts = span.timestamp_ns
        key = (span.service_name, span.operation, window_start_ns(ts, window_ns))
        acc = accumulators.get(key)
        if acc is None:
            limits = () if thresholds is None else thresholds.get(span.service_name, ())
            acc = accumulators[key] = RedAcc(max_exemplars, max_bins, limits)
        mark = ts if watermark_cap_ns is None else min(ts, watermark_cap_ns)
        watermark = mark if watermark is None else max(watermark, mark)
        duration = max(span.duration_ns, 0)
        acc.stats.add(duration, bool(span.is_error), span.trace_id)
        for i, limit in enumerate(acc.limits):
            if duration <= limit:
                acc.under_counts[i] += 1
    return watermark
