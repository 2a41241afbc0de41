"""The manifest: a JSON-lines record of everything ``spanstream generate`` sent.

Lines have a ``type``: ``anomaly`` (labels, first), ``trace`` (every span of a
generated trace, written when generated), ``message`` (key, partition,
offset, trace ids and span count, written on delivery) and ``summary``
(totals, last). :func:`read_manifest` joins them back and :func:`summarize`
counts spans per window/service/operation for comparing windows in tests.

>>> spans = [ManifestSpan("t", "s1", "cart", "GET", 10**9 + 5, 100, False),
...          ManifestSpan("t", "s2", "cart", "GET", 61 * 10**9, 300, True)]
>>> counts = summarize(spans, window_s=60)
>>> counts[(0, "cart", "GET")].count, counts[(60 * 10**9, "cart", "GET")].errors
(1, 1)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipeline.generate.traces import Trace

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ManifestSpan:
    """One sent span as the manifest records it (``span_name`` raw, as sent)."""

    trace_id: str
    span_id: str
    service: str
    span_name: str
    start_ns: int
    duration_ns: int
    is_error: bool


@dataclass
class Manifest:
    """A manifest read back: spans per trace, delivered messages, anomaly labels, summary."""

    traces: dict[str, list[ManifestSpan]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def spans(self) -> list[ManifestSpan]:
        """Every span of every trace."""
        return [s for spans in self.traces.values() for s in spans]

    def locations(self, trace_id: str) -> list[tuple[int, int]]:
        """(partition, offset) of each delivered message holding spans of ``trace_id``."""
        return [(m["partition"], m["offset"]) for m in self.messages if trace_id in m["trace_ids"]]


class ManifestWriter:
    """Appends manifest lines to an open text stream (the caller owns the file)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def _line(self, doc: dict[str, Any]) -> None:
        self.out.write(json.dumps(doc, separators=(",", ":")) + "\n")

    def anomalies(self, labels: Iterable[dict[str, Any]]) -> None:
        """One ``anomaly`` line per label."""
        for label in labels:
            self._line({"type": "anomaly", **label})

    def trace(self, trace: Trace) -> None:
        """One ``trace`` line with every span of ``trace``."""
        spans = [
            {
                "span_id": s.span_id.hex(),
                "service": s.service,
                "span_name": s.name,
                "start_ns": s.start_ns,
                "duration_ns": s.end_ns - s.start_ns,
                "is_error": s.is_error,
            }
            for s in trace.spans
        ]
        self._line({"type": "trace", "trace_id": trace.trace_id_hex, "spans": spans})

    def message(
        self, key: bytes | None, partition: int, offset: int, trace_ids: Iterable[str], spans: int
    ) -> None:
        """One ``message`` line for a delivered record."""
        self._line(
            {
                "type": "message",
                "key": None if key is None else key.decode(),
                "partition": partition,
                "offset": offset,
                "trace_ids": list(trace_ids),
                "span_count": spans,
            }
        )

    def summary(self, **totals: Any) -> None:
        """The closing ``summary`` line."""
        self._line({"type": "summary", **totals})


def read_manifest(path: str | Path) -> Manifest:
    """Parse a manifest file written by :class:`ManifestWriter`."""
    manifest = Manifest()
    with open(path, encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            kind = doc.pop("type")
            if kind == "trace":
                tid = doc["trace_id"]
                manifest.traces[tid] = [ManifestSpan(tid, **s) for s in doc["spans"]]
            elif kind == "message":
                manifest.messages.append(doc)
            elif kind == "anomaly":
                manifest.anomalies.append(doc)
            elif kind == "summary":
                manifest.summary = doc
    return manifest


@dataclass
class WindowCounts:
    """Spans of one (window, service, operation): count, errors, durations."""

    count: int = 0
    errors: int = 0
    duration_sum_ns: int = 0
    max_duration_ns: int = 0

    @property
    def mean_duration_ns(self) -> float:
        """Mean span duration (0 for an empty window)."""
        return self.duration_sum_ns / self.count if self.count else 0.0


def summarize(
    spans: Iterable[ManifestSpan],
    window_s: int = 60,
    op: Callable[[ManifestSpan], str] = lambda s: s.span_name,
) -> dict[tuple[int, str, str], WindowCounts]:
    """Counts per (window start ns, service, ``op(span)``); windows align to the epoch."""
    width = window_s * NS
    out: dict[tuple[int, str, str], WindowCounts] = {}
    for span in spans:
        key = (span.start_ns - span.start_ns % width, span.service, op(span))
        counts = out.setdefault(key, WindowCounts())
        counts.count += 1
        counts.errors += span.is_error
        counts.duration_sum_ns += span.duration_ns
        counts.max_duration_ns = max(counts.max_duration_ns, span.duration_ns)
    return out
