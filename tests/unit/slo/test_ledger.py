"""SLI count records and per-SLO burn state: exactly-once counting, checked reads."""

from __future__ import annotations

import json

import pytest

from pipeline.checked import StateError
from pipeline.slo.ledger import DEDUP_WINDOWS, SliCount, SloState, slo_key
from pipeline.slo.spec import BurnAlertRule, Slo

MIN = 60 * 1_000_000_000
SLO = Slo("up", "shop", (), "availability", 99.0, burn_alerts=(BurnAlertRule("page", 600, 60, 10),))


def sli(start: int, good: int = 9, total: int = 10, operation: str = "GET /") -> SliCount:
    return SliCount("up", "shop", operation, start * MIN, MIN, good, total, ("a" * 32,))


def test_counts_are_taken_once_per_series_and_window() -> None:
    state = SloState.new(SLO, MIN)
    assert state.add(sli(0)) == "counted"
    assert state.add(sli(0)) == "duplicate"  # a retried close or a replay
    assert state.add(sli(0, operation="POST /")) == "counted"
    assert state.add(sli(1, good=10)) == "counted"
    assert state.fine.sum(2 * MIN, 2 * MIN) == (28, 30)
    assert state.exemplars == ["a" * 32]  # from the windows with bad requests
    assert state.evaluated_until_ns == 0 and state.newest_ns == MIN


def test_counts_past_the_dedup_horizon_are_late_never_double() -> None:
    state = SloState.new(SLO, MIN)
    state.add(sli(0))
    state.add(sli(DEDUP_WINDOWS + 1))
    assert state.add(sli(0)) == "late"
    assert 0 not in state.seen  # the horizon bounds the memory of seen series


def test_state_round_trips_through_json() -> None:
    state = SloState.new(SLO, MIN)
    for i in range(5):
        state.add(sli(i))
    state.episodes = {"page": ["0123456789abcdef", 0, 2]}
    raw = json.loads(json.dumps(state.to_dict()))
    back = SloState.from_dict(raw, SLO, MIN)
    assert back.to_dict() == state.to_dict()
    assert back.add(sli(4)) == "duplicate"


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"episodes": {"sms": ["0123456789abcdef", 0, 1]}},
        {"episodes": {"page": ["short", 0, 1]}},
        {"seen": "all"},
        {"exemplars": ["x"] * 6},
        {"evaluated_until_ns": "soon"},
        {"fine": [MIN, 999, None, [], []]},  # kept for other rules
        {"extra": 1},
    ],
)
def test_a_tampered_state_is_refused(change: dict[str, object]) -> None:
    data = {**SloState.new(SLO, MIN).to_dict(), **change}
    with pytest.raises(StateError):
        SloState.from_dict(data, SLO, MIN)


def test_sli_records_round_trip_and_bad_ones_are_refused() -> None:
    count = sli(3)
    assert SliCount.is_sli(count.to_json())
    assert SliCount.from_json(count.to_json()) == count
    assert json.loads(slo_key("up")) == ["slo", "up"]
    good = json.loads(count.to_json())["slo_sli"]
    for i, bad in [(5, 11), (6, 1), (4, 0), (4, -1), (7, ["x"] * 9), (0, 5), (5, -1)]:
        body = list(good)
        body[i] = bad
        with pytest.raises(StateError):
            SliCount.from_json(json.dumps({"slo_sli": body}).encode())
    with pytest.raises(StateError):
        SliCount.from_json(b'{"slo_sli": [1, 2]}')


def test_a_count_for_an_evaluated_window_marks_it_for_restating() -> None:
    state = SloState.new(SLO, MIN)
    state.add(sli(5))
    state.evaluated_until_ns = 7 * MIN
    assert state.add(sli(6, operation="POST /")) == "counted"
    assert state.add(sli(3, operation="POST /")) == "counted"  # older than the first count
    assert state.restate_from_ns == 3 * MIN
    assert state.fine.sum(7 * MIN, 4 * MIN) == (27, 30)


def test_a_window_closed_again_with_other_counts_replaces_what_was_counted() -> None:
    state = SloState.new(SLO, MIN)
    state.add(sli(0, good=8, total=10))
    # The window closes again after a crash, now with late spans merged on time.
    assert state.add(sli(0, good=9, total=12)) == "replaced"
    assert state.add(sli(0, good=9, total=12)) == "duplicate"
    assert state.fine.sum(MIN, MIN) == (9, 12) and state.coarse.sum(MIN, MIN) == (9, 12)
    back = SloState.from_dict(json.loads(json.dumps(state.to_dict())), SLO, MIN)
    assert back.add(sli(0, good=9, total=12)) == "duplicate"
