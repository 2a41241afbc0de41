"""Episode tracking and the alert message schema."""

from __future__ import annotations

import jsonschema
import pytest

from pipeline.alerts import EpisodeTracker, Finding, WindowRef, alert_id, validate_message

MIN = 60_000_000_000
TRACE = "0af7651916cd43dd8448eb211c80319c"


def window(i: int, exemplars: tuple[str, ...] = ()) -> WindowRef:
    return WindowRef("payment", "POST /pay", i * MIN, (i + 1) * MIN, exemplars)


def finding(severity: str = "warning", score: float = 0.8) -> Finding:
    return Finding(score, severity, (("p99_ms", 900.0, 100.0),), "robust")


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        # (status, version, publish) per window; None = normal window
        ([None, None], [None, None]),
        (["warning"], [("firing", 1, True)]),
        (["warning", "warning"], [("firing", 1, True), ("firing", 2, False)]),
        (["warning", "critical"], [("firing", 1, True), ("firing", 2, True)]),
        (["critical", "warning"], [("firing", 1, True), ("firing", 2, False)]),
        (["warning", None, None], [("firing", 1, True), None, ("resolved", 2, True)]),
        (["warning", None, None, None], [("firing", 1, True), None, ("resolved", 2, True), None]),
        # One normal window inside the incident does not split it: same episode goes on.
        (
            ["warning", None, "warning", None, None],
            [("firing", 1, True), None, ("firing", 2, False), None, ("resolved", 3, True)],
        ),
    ],
)
def test_episode_transitions(severities: list[str | None], expected: list[object]) -> None:
    tracker = EpisodeTracker(resolve_after=2)
    got = []
    for i, sev in enumerate(severities):
        alert = tracker.observe(window(i), None if sev is None else finding(sev))
        got.append(None if alert is None else (alert.status, alert.version, alert.publish))
    assert got == expected


def test_alert_id_is_stable_across_replays_and_distinct_per_onset() -> None:
    first = EpisodeTracker().observe(window(3), finding())
    replay = EpisodeTracker().observe(window(3), finding())
    later = EpisodeTracker().observe(window(4), finding())
    assert first is not None and replay is not None and later is not None
    assert first.alert_id == replay.alert_id == alert_id("payment", "POST /pay", 3 * MIN)
    assert later.alert_id != first.alert_id


def test_continuing_episode_keeps_id_and_collects_exemplars() -> None:
    tracker = EpisodeTracker(max_exemplars=2)
    ids = ["a" * 32, "b" * 32, "c" * 32]
    a1 = tracker.observe(window(0, (ids[0],)), finding())
    a2 = tracker.observe(window(1, (ids[1], ids[2])), finding())
    assert a1 is not None and a2 is not None
    assert a2.alert_id == a1.alert_id
    assert a2.window.exemplars == (ids[0], ids[1])


def test_state_round_trip_continues_the_episode() -> None:
    tracker = EpisodeTracker()
    onset = tracker.observe(window(0), finding())
    assert tracker.observe(window(1), None) is None  # quiet 1 of 3
    restored = EpisodeTracker.from_dict(tracker.to_dict())
    assert restored.observe(window(2), None) is None  # quiet 2 of 3, counted across restore
    resolved = restored.observe(window(3), None)
    assert onset is not None and resolved is not None
    assert (resolved.alert_id, resolved.version, resolved.status) == (onset.alert_id, 2, "resolved")


def test_message_validates_against_schema() -> None:
    alert = EpisodeTracker().observe(window(0, (TRACE,)), finding("critical", 0.97))
    assert alert is not None
    message = alert.to_message()
    validate_message(message)
    assert message["exemplar_trace_ids"] == [TRACE]
    assert message["summary"].startswith("payment POST /pay: p99_ms 900 vs expected 100")


@pytest.mark.parametrize(
    ("field", "value"),
    [("score", 1.5), ("severity", "none"), ("alert_id", "XYZ"), ("exemplar_trace_ids", ["x"])],
)
def test_schema_rejects_bad_fields(field: str, value: object) -> None:
    alert = EpisodeTracker().observe(window(0), finding())
    assert alert is not None
    message = alert.to_message()
    message[field] = value
    with pytest.raises(jsonschema.ValidationError):
        validate_message(message)
