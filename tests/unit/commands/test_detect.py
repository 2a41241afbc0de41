"""``spanstream detect`` through the real CLI entry point."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest

from pipeline.cli import main


def write_series(path: Path, n: int = 200, spike_at: int = 150, iso: bool = False) -> None:
    rng = random.Random(1)
    lines = ["timestamp,value"]
    for i in range(n):
        t = 1_700_000_000 + 60 * i
        stamp = f"2023-11-14T22:{i % 60:02d}:00Z" if iso else str(t)
        value = 100 + rng.gauss(0, 2) + (80 if i == spike_at else 0)
        lines.append(f"{stamp},{value:.3f}")
    path.write_text("\n".join(lines) + "\n")


def read_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_scores_every_row_in_input_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "series.csv"
    write_series(src)
    assert main(["detect", "--input", str(src)]) == 0
    rows = read_rows(capsys.readouterr().out)
    assert len(rows) == 200 and list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    assert rows[0]["timestamp"] == "1700000000"
    scores = [float(r["anomaly_score"]) for r in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[150] >= 0.5 and max(scores[100:150]) < 0.5


@pytest.mark.parametrize("detector", ["robust", "seasonal", "hst", "combined", "tail"])
def test_each_detector_and_output_file(tmp_path: Path, detector: str) -> None:
    src, out = tmp_path / "series.csv", tmp_path / "out.csv"
    write_series(src, iso=True)
    args = ["detect", "--input", str(src), "--output", str(out), "--detector", detector]
    if detector == "seasonal":
        args += ["--param", "season_length=24"]
    assert main(args) == 0
    rows = read_rows(out.read_text())
    assert len(rows) == 200
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)


def test_param_changes_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "series.csv"
    write_series(src)
    main(["detect", "--input", str(src)])
    default = capsys.readouterr().out
    main(["detect", "--input", str(src), "--param", "threshold=8"])
    assert capsys.readouterr().out != default


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "series.csv:1: empty file"),
        ("time,value\n1,2\n", "series.csv:1: missing column(s) timestamp"),
        ("timestamp,value\n", "series.csv:1: no data rows"),
        ("timestamp,value\n60,1\n120,abc\n", "series.csv:3: value 'abc' is not a number"),
        ("timestamp,value\n60,1\nyesterday,2\n", "series.csv:3: timestamp 'yesterday'"),
        ("timestamp,value\n2024-13-01T00:00:00,2\n", "series.csv:2: timestamp"),
        ("timestamp,value\n60\n", "series.csv:2: expected 2 columns"),
        ("timestamp,value\n60,nan\n", "series.csv:2: value 'nan' is not a finite"),
    ],
)
def test_bad_input_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    src = tmp_path / "series.csv"
    src.write_text(content)
    assert main(["detect", "--input", str(src)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("spanstream: error: ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--param", "nope"], "expected KEY=VALUE"), (["--param", "bogus=1"], "bogus")],
)
def test_bad_params_are_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    src = tmp_path / "series.csv"
    write_series(src, n=10)
    assert main(["detect", "--input", str(src), *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--input", str(tmp_path / "nope.csv")]) == 1
    assert "nope.csv" in capsys.readouterr().err


def naive_series(path: Path, n: int = 120) -> None:
    """NAB's form: ``2014-04-01 00:00:00`` timestamps, no time zone."""
    lines = ["timestamp,value"] + [
        f"2014-04-01 {i // 60:02d}:{i % 60:02d}:00,{10 + (i % 3)}" for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")


def test_naive_timestamps_are_read_as_utc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "series.csv"
    naive_series(src)
    assert main(["detect", "--input", str(src)]) == 0
    rows = read_rows(capsys.readouterr().out)
    assert len(rows) == 120 and rows[0]["timestamp"] == "2014-04-01 00:00:00"


def test_naive_timestamps_in_another_zone_keep_their_order() -> None:
    from zoneinfo import ZoneInfo

    from pipeline.commands.detect import parse_timestamp

    utc = parse_timestamp("2014-04-01 00:00:00")
    assert utc == 1396310400.0
    assert parse_timestamp("2014-04-01 00:00:00", ZoneInfo("Europe/Paris")) == utc - 7200
    # An explicit offset wins over the zone.
    assert parse_timestamp("2014-04-01T00:00:00+00:00", ZoneInfo("Europe/Paris")) == utc


def test_timezone_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "series.csv"
    naive_series(src)
    assert main(["detect", "--input", str(src), "--timezone", "America/New_York"]) == 0
    assert main(["detect", "--input", str(src), "--timezone", "Mars/Olympus"]) == 2
    assert "--timezone 'Mars/Olympus'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([0.0, 3.0, 1.0, 0.0], "count"),
        ([0.01, 0.5, 1.0], "ratio"),
        ([1.5, 20.0, 300.0], "value"),  # a log scale is never guessed
        ([20.5, 21.0, 22.5], "value"),
        ([-1.0, 3.5], "value"),
    ],
)
def test_auto_kind_heuristic(values: list[float], kind: str) -> None:
    from pipeline.commands.detect import guess_kind

    assert guess_kind(values) == kind


@pytest.mark.parametrize("kind", ["auto", "count", "latency", "ratio", "value"])
def test_each_kind_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    src = tmp_path / "series.csv"
    write_series(src)
    assert main(["detect", "--input", str(src), "--kind", kind]) == 0
    scores = [float(r["anomaly_score"]) for r in read_rows(capsys.readouterr().out)]
    assert len(scores) == 200 and all(0.0 <= s <= 1.0 for s in scores)
    if kind != "ratio":  # values near 100 are not a share: nothing to say about the spike
        assert scores[150] >= 0.5


@pytest.mark.parametrize(
    ("seconds", "day"),
    [
        ([0, 300, 600, 900], 288),  # NAB's 5-minute series
        ([0, 60, 120, 180, 600], 1440),  # a gap does not change the median step
        ([0, 7, 14], 0),  # a day is not a whole number of 7 s steps
        ([0, 1, 2], 0),  # 86,400 points a day: longer than the season kept
        ([5, 5, 5], 0),  # no step at all
    ],
)
def test_points_per_day_gives_tail_its_season(seconds: list[float], day: int) -> None:
    from pipeline.commands.detect import points_per_day

    assert points_per_day(seconds) == day
