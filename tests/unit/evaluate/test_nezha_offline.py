"""Offline judging of dumped Nezha windows, and reading episodes from published alerts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.evaluate.nezha_offline import (
    evaluate,
    judge_windows,
    meta_line,
    parse_lines,
    read_file,
    window_line,
)
from pipeline.evaluate.nezha_score import NS_PER_S, AlertState, ScoredFault, episode_windows

W = 60 * NS_PER_S


def row(i: int, p50: float, requests: int = 300) -> list[object]:
    return ["cart", "GET", i * W, (i + 1) * W, requests, 0, 0, p50, p50 * 2, p50 * 3, p50 * 4, 0]


def dump(tmp_path: Path, p50s: list[float]) -> Path:
    fault = ScoredFault("00:10:00", "cart", "cpu", 10 * W, 0.0)
    lines = [json.dumps(meta_line(0, len(p50s) * W, 60, [fault]))]
    lines += [json.dumps(window_line(row(i, p))) for i, p in enumerate(p50s)]
    path = tmp_path / "windows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_dump_round_trips_and_a_fault_is_found(tmp_path: Path) -> None:
    data = read_file(dump(tmp_path, [20.0] * 10 + [400.0] * 3 + [20.0] * 7))
    assert len(data.windows) == 20 and data.faults[0].service == "cart"
    report = evaluate(data)
    assert report.alerted == 1 and report.rows[0].delay_s == 60.0


def test_windows_are_judged_in_close_order_whatever_the_file_order(tmp_path: Path) -> None:
    data = read_file(dump(tmp_path, [20.0] * 10 + [400.0] * 3 + [20.0] * 7))
    assert judge_windows(data.windows) == judge_windows(tuple(reversed(data.windows)))


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{}"], "line 1"),
        (["not json"], "line 1"),
        ([json.dumps({"kind": "window"})], "line 1"),
        ([], "no meta line"),
        ([json.dumps({"kind": "meta", "t0_ns": 0})], "meta line"),
    ],
)
def test_a_bad_dump_is_one_clear_error(lines: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_lines(lines, "f.jsonl")


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--windows"):
        read_file(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("states", "starts"),
    [
        # onset, resolved 3 quiet windows after the last anomalous one
        ([("firing", 0), ("resolved", 5 * W)], [0, W, 2 * W]),
        # still open at the end: up to the last published window
        ([("firing", 0), ("firing", 2 * W)], [0, W, 2 * W]),
        # resolved right after one window
        ([("firing", 4 * W), ("resolved", 7 * W)], [4 * W]),
    ],
)
def test_episode_windows(states: list[tuple[str, int]], starts: list[int]) -> None:
    onset = states[0][1]
    alerts = [AlertState("a1", "cart", s, t, onset) for s, t in states]
    assert [w.window_start_ns for w in episode_windows(alerts, W)] == starts
