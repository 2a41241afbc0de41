"""WindowJudge: per-series state survives a reload, warm-up is silent, an episode keeps its id."""

from __future__ import annotations

import base64
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pipeline.alerts import Alert
from pipeline.detect.red import RedDetector
from pipeline.judge import WindowJudge
from pipeline.windows.assembler import series_key
from pipeline.windows.series import ClosedWindow
from tests.unit.detect.test_state import marker_pickle

NS = 1_000_000_000
WINDOW = 60 * NS
WARMUP = 2  # RedConfig.warmup of the default detector


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


def run(judge: WindowJudge, windows: list[ClosedWindow], state: dict[str, Any]) -> list[Alert]:
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
    windows = [*normal(0, WARMUP - 1), window(WARMUP - 1, p99_ms)]
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


def rejected(reason: str, table: str = "detectors") -> float:
    value = REGISTRY.get_sample_value(
        "spanstream_state_rejected_total", {"table": table, "reason": reason}
    )
    return value or 0.0


def legacy_pickle_value(marker: Path) -> str:
    """A version 1 value (base64 pickle, as the table held before) that runs code."""
    return base64.b64encode(marker_pickle(marker)).decode()


def test_a_tampered_pickle_state_never_runs_and_only_its_series_starts_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The record that ran ``id`` as root: now rejected, counted, logged, and the close goes on."""
    judge, state = WindowJudge(), {}
    for a, b in zip(normal(0, 60), normal(0, 60, seed=3, operation="POST /"), strict=True):
        judge.judge([a, b], state)
    marker = tmp_path / "owned"
    evil_key = series_key("shop", "GET /")
    state[evil_key] = legacy_pickle_value(marker)
    before = rejected("legacy_pickle")

    spikes = [window(60, 1_000.0), window(60, 1_000.0, operation="POST /")]
    alerts = WindowJudge().judge(spikes, state)  # a restarted worker

    assert not marker.exists()
    assert rejected("legacy_pickle") == before + 1
    # The other series scores its spike with its restored model; the tampered one warms up.
    assert [a.window.operation for a in alerts] == ["POST /"]
    assert state[evil_key]["v"] == 2 and state[evil_key]["model"]["kind"] == "red"
    assert [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()] == [
        f"detectors table: rejected the stored record of key {evil_key!a} "
        "(legacy_pickle: a version 1 (pickle) state); the series starts its warm-up over"
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"v": 1, "model": {}, "episodes": {}}, "version"),
        ({"v": 3, "model": {}, "episodes": {}}, "version"),
        ([1, 2, 3], "schema"),
        (17, "schema"),
        ({"v": 2, "model": {"kind": "red", "v": 1, "features": {}}, "episodes": {}}, "schema"),
        ({"v": 2, "model": {"kind": "hst", "v": 1}, "episodes": {}}, "kind"),
        ({"v": 2, "model": None, "episodes": {}, "extra": 1}, "schema"),
    ],
)
def test_other_versions_and_shapes_are_rejected_counted_and_restart_the_warm_up(
    value: object, reason: str
) -> None:
    state: dict[str, object] = {}
    run(WindowJudge(), normal(0, 60), state)
    key = series_key("shop", "GET /")
    state[key] = value
    before = rejected(reason)
    assert run(WindowJudge(), [window(60 + i, 1_000.0) for i in range(3)], state) == []
    assert rejected(reason) == before + 1  # once: the fresh state replaced the bad one


def learned_value() -> dict[str, Any]:
    state: dict[str, Any] = {}
    history = [*normal(0, 60), *(window(60 + i, 1_000.0) for i in range(2))]
    run(WindowJudge(), history, state)  # an open episode too
    (value,) = state.values()
    return json.loads(json.dumps(value))


def at(value: dict[str, Any], path: str, new: object) -> dict[str, Any]:
    *parents, last = path.split(".")
    node: Any = value
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = new
    else:
        node[last] = new
    return value


EPISODE = "episodes.shop|GET /"


@pytest.mark.parametrize(
    ("path", "new"),
    [
        (f"{EPISODE}.alert_id", "'; DROP TABLE"),
        (f"{EPISODE}.version", -1),
        (f"{EPISODE}.severity", "apocalyptic"),
        (f"{EPISODE}.exemplars", ["ab" * 16] * 1000),
        (f"{EPISODE}.last.score", math.nan),
        (f"{EPISODE}.last.metrics", [["p99_ms", 1.0, 2.0]] * 1000),
        (f"{EPISODE}.last.metrics.0.1", math.inf),
        (f"{EPISODE}.last.detector", "x" * 10_000),
        (f"{EPISODE}.quiet", "3"),
        ("episodes", {f"s|{i}": {} for i in range(1000)}),
        ("episodes", []),
    ],
)
def test_a_tampered_episode_is_rejected(path: str, new: object) -> None:
    value = at(learned_value(), path, new)
    state = {series_key("shop", "GET /"): json.loads(json.dumps(value))}
    before = rejected("schema")
    run(WindowJudge(), [window(62, 100.0)], state)
    assert rejected("schema") == before + 1


def test_a_valid_state_is_not_rejected() -> None:
    """The tampered cases above start from a state that does load."""
    state = {series_key("shop", "GET /"): learned_value()}
    before = sum(rejected(r) for r in ("schema", "version", "kind", "bad_json"))
    (alert,) = run(WindowJudge(), [window(62, 1_000.0)], state)
    assert alert.version == 3  # the episode went on
    assert sum(rejected(r) for r in ("schema", "version", "kind", "bad_json")) == before


def test_a_state_that_loads_but_breaks_its_model_starts_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defence in depth: a check that missed something must not fail every close."""
    state: dict[str, object] = {}
    run(WindowJudge(), normal(0, 60), state)
    load = RedDetector.load_state

    def lossy(self: RedDetector, value: object) -> None:
        load(self, value)
        self.states.pop("p99_ms")  # passes the checks, then KeyError when scoring

    monkeypatch.setattr(RedDetector, "load_state", lossy)
    before = rejected("unusable")
    assert run(WindowJudge(), [window(60, 100.0)], state) == []
    assert rejected("unusable") == before + 1
