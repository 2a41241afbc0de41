"""``spanstream evaluate --nezha``: options through the real CLI entry point, settings text."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.commands.evaluate_nezha import settings_text
from pipeline.evaluate.nezha_replay import ReplayOptions, ReplayResult
from pipeline.evaluate.nezha_score import Report


def test_missing_dataset_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["evaluate", "--nezha", str(tmp_path / "absent")])
    assert code != 0
    assert "no fault_list.json" in capsys.readouterr().err


def test_bad_speedup_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["evaluate", "--nezha", str(tmp_path), "--speedup", "0"])
    assert code != 0
    assert "--speedup 0.0" in capsys.readouterr().err


def test_settings_text_names_pace_windows_and_late_spans() -> None:
    result = ReplayResult(Report((), 0, 0.0), 43, 0, 10, 20, 2640.0, 300.0, 20, 3, True)
    live = settings_text(ReplayOptions(Path("x"), speedup=10), result)
    assert "pace live, speedup 10, windows 60 s" in live
    assert "20 spans counted in windows, 3 late" in live
    backlog = settings_text(ReplayOptions(Path("x"), pace="backlog"), result)
    assert "pace backlog, windows" in backlog
