"""Window-level detection metrics: pure functions over label and alert sequences.

An *event* is a maximal run of labelled windows. An *alert onset* is an alerting
window whose predecessor did not alert (or the first window). Scores are not
point-adjusted: a detector gets credit for an event once, at its first alert.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


def events(labels: Sequence[int]) -> list[tuple[int, int]]:
    """Half-open ``[start, end)`` runs of true labels.

    >>> events([False, True, True, False, True])
    [(1, 3), (4, 5)]
    """
    runs: list[tuple[int, int]] = []
    start = None
    for i, flag in enumerate([*labels, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def onsets(alerts: Sequence[int]) -> list[int]:
    """Indices where an alert starts.

    >>> onsets([True, True, False, True])
    [0, 3]
    """
    return [i for i, a in enumerate(alerts) if a and (i == 0 or not alerts[i - 1])]


@dataclass
class Counts:
    """Sufficient statistics of one or more series, summable across operations."""

    events: int = 0
    detected: int = 0
    onsets: int = 0
    onsets_in_event: int = 0
    delays: list[int] = field(default_factory=list)

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.events + other.events,
            self.detected + other.detected,
            self.onsets + other.onsets,
            self.onsets_in_event + other.onsets_in_event,
            self.delays + other.delays,
        )

    @property
    def false_onsets(self) -> int:
        """Alert onsets outside every event."""
        return self.onsets - self.onsets_in_event


def count(labels: Sequence[int], alerts: Sequence[int]) -> Counts:
    """Counts for one series.

    >>> c = count([0, 1, 1, 0, 0, 1, 0], [0, 0, 1, 1, 1, 0, 1])
    >>> (c.events, c.detected, c.onsets, c.onsets_in_event, c.delays)
    (2, 1, 2, 1, [1])
    """
    if len(labels) != len(alerts):
        raise ValueError("labels and alerts differ in length")
    c = Counts()
    for start, end in events(labels):
        c.events += 1
        first = next((i for i in range(start, end) if alerts[i]), None)
        if first is not None:
            c.detected += 1
            c.delays.append(first - start)
    starts = onsets(alerts)
    c.onsets = len(starts)
    c.onsets_in_event = sum(1 for i in starts if labels[i])
    return c


def event_recall(c: Counts) -> float | None:
    """Share of events with at least one alert; None without events."""
    return c.detected / c.events if c.events else None


def onset_precision(c: Counts) -> float | None:
    """Share of alert onsets inside an event; None without onsets."""
    return c.onsets_in_event / c.onsets if c.onsets else None


def f1(precision: float | None, recall: float | None) -> float | None:
    """Harmonic mean of onset precision and event recall (0 when both are 0).

    >>> f1(0.5, 1.0)
    0.6666666666666666
    """
    if precision is None or recall is None:
        return None
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def delay_quantiles(delays: Sequence[int]) -> tuple[float, float] | tuple[None, None]:
    """Median and 90th percentile (nearest rank) of detection delays in windows.

    >>> delay_quantiles([0, 1, 2, 3, 10])
    (2.0, 10.0)
    """
    if not delays:
        return None, None
    ordered = sorted(delays)
    rank = max(0, -(-9 * len(ordered) // 10) - 1)  # ceil(0.9 n) - 1
    return float(statistics.median(ordered)), float(ordered[rank])


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the precision-recall curve (step-wise average precision, ties grouped).

    >>> average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    0.8333333333333333
    """
    positives = sum(1 for flag in labels if flag)
    if positives == 0:
        return None
    pairs = sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])
    ap, tp, seen, i = 0.0, 0, 0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        group_tp = sum(1 for _, flag in pairs[i:j] if flag)
        tp += group_tp
        seen += j - i
        ap += (group_tp / positives) * (tp / seen)
        i = j
    return ap
