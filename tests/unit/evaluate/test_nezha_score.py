"""Per-fault scoring of a Nezha replay on hand-computed cases."""

from __future__ import annotations

from pipeline.evaluate.nezha_score import (
    AlertWindow,
    ScoredFault,
    fault_ranges,
    format_report,
    onsets,
    score,
)

S = 1_000_000_000
W = 60 * S


def win(service: str, start_s: int) -> AlertWindow:
    return AlertWindow(service, start_s * S, start_s * S + W)


def fault(service: str, at_s: int) -> ScoredFault:
    return ScoredFault(f"t{at_s}", service, "cpu", at_s * S, 0.0)


def test_onsets_per_service() -> None:
    alerts = [win("a", 0), win("a", 60), win("b", 60), win("a", 180)]
    assert [(o.service, o.window_start_ns // S) for o in onsets(alerts, W)] == [
        ("a", 0),
        ("b", 60),
        ("a", 180),
    ]


def test_fault_ranges_stop_at_the_next_fault() -> None:
    ranges = fault_ranges([fault("a", 0), fault("b", 200), fault("c", 1000)], W, 120 * S)
    assert [(lo // S, hi // S) for lo, hi in ranges] == [(0, 200), (200, 440), (1000, 1240)]


def test_score_hand_computed() -> None:
    faults = [fault("cart", 100), fault("ad", 1000)]
    alerts = [
        win("cart", 120),  # onset on the faulted service, window ends 180 s: delay 80 s
        win("cart", 180),  # same episode
        win("frontend", 240),  # onset on another service inside the range [100, 340)
        win("frontend", 2000),  # outside every fault: a false onset
        win("frontend", 2120),  # a second, separate one
    ]
    report = score(faults, alerts, 0, 3600 * S, window_ns=W, fault_ns=120 * S)
    first, second = report.rows
    assert (first.alerted, first.delay_s, first.onsets_service, first.onsets_other) == (
        True,
        80.0,
        1,
        1,
    )
    assert (second.alerted, second.delay_s, second.onsets_service) == (False, None, 0)
    assert report.alerted == 1
    assert report.outside_onsets == 2
    # Outside time: 3600 s less the two 240 s ranges.
    assert abs(report.outside_hours - 3120 / 3600) < 1e-9
    assert report.delay_p50_s == 80.0
    # Not under fault: the frontend onset inside the first range and the two outside.
    assert report.other_per_hour == 3.0


def test_window_overlapping_the_injection_counts() -> None:
    # The window [60, 120) holds the injection at 100 s: its alert is about the fault.
    report = score([fault("cart", 100)], [win("cart", 60)], 0, 600 * S, window_ns=W, fault_ns=0)
    assert (report.rows[0].alerted, report.rows[0].delay_s) == (True, 20.0)


def test_alert_before_the_injection_does_not_count() -> None:
    report = score([fault("cart", 100)], [win("cart", 0)], 0, 600 * S, window_ns=W, fault_ns=0)
    assert not report.rows[0].alerted
    assert report.outside_onsets == 1


def test_storm_is_visible_as_onsets_per_fault() -> None:
    flapping = [win("cart", s) for s in (120, 240, 360)]  # three separate onsets
    report = score([fault("cart", 100)], flapping, 0, 600 * S, window_ns=W, fault_ns=300 * S)
    assert report.rows[0].onsets_service == 3


def test_format_report_markdown_has_rows_and_totals() -> None:
    report = score([fault("cart", 100)], [win("cart", 120)], 0, 3600 * S, window_ns=W, fault_ns=0)
    text = format_report(report, markdown=True)
    lines = text.splitlines()
    assert lines[0] == (
        "| # | injected | replay_min | service | fault | clamped_s | alerted | delay_s "
        "| onsets | other |"
    )
    assert lines[1] == "|---|---|---|---|---|---|---|---|---|---|"
    assert lines[2] == "| 1 | t100 | 1.7 | cart | cpu | 0 | yes | 80 | 1 | 0 |"
    assert lines[3].startswith("| total |") and "1/1" in lines[3]
    assert "alert onsets outside faults: 0" in text
    plain = format_report(report)
    assert "total" in plain and "|" not in plain
    assert plain.splitlines()[0].split() == lines[0].strip("| ").split(" | ")
