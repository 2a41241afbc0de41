"""The evaluation harness and the ``spanstream evaluate`` command, on a small run."""

from __future__ import annotations

import functools

import pytest

from pipeline.cli import main
from pipeline.detect.registry import build_detector
from pipeline.evaluate.harness import evaluate, format_table
from pipeline.evaluate.scenarios import SCENARIOS

SPIKE = [s for s in SCENARIOS if s.name == "latency_spike"]


def test_robust_beats_random_on_a_latency_spike() -> None:
    factories = {n: functools.partial(build_detector, n) for n in ("robust", "random")}
    robust, rand = evaluate(factories, days=2, seed=3, ops=1, scenarios=SPIKE)
    assert (robust.detector, rand.detector) == ("robust", "random")
    assert robust.recall == 1.0 and robust.events == 3
    assert robust.auc_pr is not None and rand.auc_pr is not None
    assert robust.auc_pr > 0.9 > 0.1 > rand.auc_pr
    assert robust.false_per_day <= 1.0 < rand.false_per_day
    table = format_table([robust, rand], markdown=True)
    assert table.splitlines()[0].startswith("| detector | scenario |")
    assert len(table.splitlines()) == 4


def test_command_prints_a_row_per_detector_and_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["evaluate", "--days", "2", "--ops", "1", "--jobs", "1", "--detectors", "random"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("random ")]
    assert len(rows) == len(SCENARIOS)


@pytest.mark.parametrize("argv", [["--days", "1"], ["--ops", "0"], ["--detectors", "robust,nope"]])
def test_command_rejects_bad_options(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(["evaluate", *argv]) == 2
    assert capsys.readouterr().err.startswith("spanstream: error: ")
