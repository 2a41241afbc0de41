"""WindowJudge: per-series state survives a reload, warm-up is silent, an episode keeps its id."""

from __future__ import annotations

import json
import random

import pytest

from pipeline.alerts import Alert
from pipeline.judge import WindowJudge
from pipeline.windows.assembler import series_key
from pipeline.windows.series import ClosedWindow

NS = 1_000_000_000
WINDOW = 60 * NS
WARMUP = 30  # RobustConfig.warmup of the default detector


def window(i: int, p99_ms: float, *, requests: int = 200, operation: str = "GET /") -> ClosedWindow:
    """Window ``i`` of a series: p50/p95 scale with p99, a few errors."""
    errors = 2
    return ClosedWindow(
        "shop",
        operation,
        i * WINDOW,
        (i + 1) * WINDOW,
        requests,
        errors,
        errors / requests,
        p99_ms / 4,
        p99_ms / 2,
        p99_ms,
        p99_ms * 1.2,
        0,
        (f"{i:032x}",),
    )


def normal(start: int, count: int, seed: int = 7, operation: str = "GET /") -> list[ClosedWindow]:
    """Windows with a p99 around 100 ms and a little noise (a detector needs some spread)."""
    rng = random.Random(seed)
    return [
        window(
            i, 100.0 * rng.uniform(0.9, 1.1), requests=rng.randint(180, 220), operation=operation
        )
        for i in range(start, start + count)
    ]


def run(judge: WindowJudge, windows: list[ClosedWindow], state: dict[str, str]) -> list[Alert]:
    """Judge windows one close at a time, as the worker's timer does."""
    return [alert for w in windows for alert in judge.judge([w], state)]


def test_state_survives_a_reload_and_scores_the_same() -> None:
    history, rest = (
        normal(0, 60),
        [*normal(60, 5, seed=8), *(window(65 + i, 900.0) for i in range(3))],
    )
    state: dict[str, str] = {}
    run(WindowJudge(), history, state)
    # The worker's table is JSON-serialized and replayed from its changelog.
    reloaded: dict[str, str] = json.loads(json.dumps(state))
    assert reloaded == state and list(state) == [series_key("shop", "GET /")]

    kept_going = run(WindowJudge(), rest, state)
    restarted = run(WindowJudge(), rest, reloaded)  # a new process, a new judge
    assert kept_going, "the spike must alert, or this test compares nothing"
    assert restarted == kept_going
    assert reloaded == state


def test_a_fresh_state_would_not_have_alerted() -> None:
    """The reload test above only means something if the learned state matters."""
    spike = [window(65 + i, 900.0) for i in range(3)]
    assert run(WindowJudge(), spike, {}) == []


@pytest.mark.parametrize("p99_ms", [1.0, 100.0, 5_000.0, 60_000.0])
def test_no_alert_during_warm_up(p99_ms: float) -> None:
    windows = normal(0, WARMUP // 2)
    windows += [window(WARMUP // 2 + i, p99_ms) for i in range(WARMUP // 2)]
    assert run(WindowJudge(), windows, {}) == []


def test_a_sustained_spike_is_one_alert_whose_versions_grow() -> None:
    state: dict[str, str] = {}
    judge = WindowJudge()
    assert run(judge, normal(0, 60), state) == []
    spike = run(judge, [window(60 + i, 1_000.0) for i in range(5)], state)
    assert len(spike) == 5
    assert {a.alert_id for a in spike} == {spike[0].alert_id}
    assert [a.version for a in spike] == [1, 2, 3, 4, 5]
    assert [a.status for a in spike] == ["firing"] * 5
    assert spike[0].publish and not any(a.publish for a in spike[1:])  # severity held
    assert spike[0].onset_start_ns == 60 * WINDOW
    assert any(name == "p99_ms" for name, _o, _e in spike[0].finding.metrics)

    back = run(judge, normal(65, 3, seed=9), state)
    resolved = [a for a in back if a.status == "resolved"]
    assert [(a.alert_id, a.version) for a in resolved] == [(spike[0].alert_id, 6)]


def test_series_are_judged_independently() -> None:
    state: dict[str, str] = {}
    judge = WindowJudge()
    for i, (a, b) in enumerate(
        zip(normal(0, 60), normal(0, 60, seed=3, operation="POST /"), strict=True)
    ):
        assert judge.judge([a, b], state) == [], i
    alerts = judge.judge([window(60, 1_000.0), window(60, 100.0, operation="POST /")], state)
    assert [a.window.operation for a in alerts] == ["GET /"]
    assert sorted(state) == sorted([series_key("shop", "GET /"), series_key("shop", "POST /")])
