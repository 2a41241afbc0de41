"""Metric functions on tiny hand-computed cases."""

from __future__ import annotations

import pytest

from pipeline.evaluate import metrics as m


@pytest.mark.parametrize(
    ("labels", "expected"),
    [([], []), ([0, 0], []), ([1, 1, 0, 1], [(0, 2), (3, 4)]), ([0, 1, 1], [(1, 3)])],
)
def test_events(labels: list[int], expected: list[tuple[int, int]]) -> None:
    assert m.events(labels) == expected


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [([], []), ([1, 0, 1, 1, 0], [0, 2]), ([0, 0, 1], [2])],
)
def test_onsets(alerts: list[int], expected: list[int]) -> None:
    assert m.onsets(alerts) == expected


def test_counts_on_hand_computed_case() -> None:
    # events: [2,5) detected at 3 (delay 1); [8,10) missed.
    # onsets: 0 (false), 3 (in event), 6 (false; the run 6-7 continues no event).
    labels = [0, 0, 1, 1, 1, 0, 0, 0, 1, 1]
    alerts = [1, 0, 0, 1, 1, 0, 1, 1, 0, 0]
    c = m.count(labels, alerts)
    assert (c.events, c.detected, c.onsets, c.onsets_in_event, c.false_onsets) == (2, 1, 3, 1, 2)
    assert c.delays == [1]
    assert m.event_recall(c) == 0.5
    assert m.onset_precision(c) == pytest.approx(1 / 3)
    assert m.f1(m.onset_precision(c), m.event_recall(c)) == pytest.approx(0.4)


def test_alert_running_across_event_start_counts_its_onset_as_false() -> None:
    c = m.count([0, 1, 1], [1, 1, 0])
    assert (c.detected, c.delays, c.onsets_in_event) == (1, [0], 0)


def test_counts_add_up() -> None:
    total = m.count([1, 0], [1, 0]) + m.count([0, 1], [1, 0])
    assert (total.events, total.detected, total.onsets, total.false_onsets) == (2, 1, 2, 1)


def test_undefined_metrics_are_none() -> None:
    c = m.count([0, 0], [0, 0])
    assert m.event_recall(c) is None and m.onset_precision(c) is None
    assert m.f1(None, 1.0) is None and m.f1(0.0, 0.0) == 0.0
    assert m.delay_quantiles([]) == (None, None)
    assert m.average_precision([0, 0], [0.1, 0.2]) is None


def test_count_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError, match="length"):
        m.count([0, 1], [0])


@pytest.mark.parametrize(
    ("labels", "scores", "expected"),
    [
        ([1, 0], [0.9, 0.1], 1.0),
        ([0, 1], [0.9, 0.1], 0.5),
        ([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], (1 + 2 / 3) / 2),
        ([1, 0, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),  # one tie group: precision 2/4
    ],
)
def test_average_precision(labels: list[int], scores: list[float], expected: float) -> None:
    assert m.average_precision(labels, scores) == pytest.approx(expected)


def test_delay_quantiles_nearest_rank() -> None:
    assert m.delay_quantiles([4]) == (4, 4)
    assert m.delay_quantiles([0, 0, 1, 5]) == (0.5, 5)
