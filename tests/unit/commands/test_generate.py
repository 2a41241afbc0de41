"""``spanstream generate`` options: help with defaults, validation, unreachable broker."""

from __future__ import annotations

import re

import pytest

from pipeline.cli import build_parser, main
from pipeline.commands.generate import parse_start_time


def test_help_documents_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    options = set(re.findall(r"--[a-z][a-z-]+", text)) - {"--help"}
    assert {"--anomaly", "--split-traces", "--batch-traces", "--start-time"} <= options
    for option in options:
        after = text.split(option, 2)[-1]
        assert "(default:" in after.split(" --", 1)[0], option
    assert "default: otlp_spans" in text


def test_defaults_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANSTREAM_KAFKA", "kafka.example:19092")
    monkeypatch.setenv("SPANSTREAM_INPUT_TOPIC", "spans-in")
    args = build_parser().parse_args(["generate"])
    assert (args.bootstrap, args.topic) == ("kafka.example:19092", "spans-in")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "0"], "--rate=0.0: must be > 0"),
        (["--start-time", "0"], "needs --count or --duration"),
        (["--split-traces", "2"], "--split-traces=2.0"),
        (["--diurnal-amplitude", "1"], "--diurnal-amplitude=1.0"),
        (["--anomaly", "spike:start=1"], "kind must be one of"),
        (["--start-time", "yesterday", "--count", "1"], "--start-time='yesterday'"),
    ],
)
def test_bad_options_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--bootstrap", "127.0.0.1:1", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spanstream: error:") and message in err and "\n" not in err


def test_unreachable_broker_is_one_line_and_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "--bootstrap", "127.0.0.1:1", "--start-time", "0", "--count", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == err.splitlines()[0] and "127.0.0.1:1 is unreachable" in err


@pytest.mark.parametrize(
    ("raw", "ns"),
    [
        ("2024-05-01T00:00:00Z", 1_714_521_600 * 10**9),
        ("2024-05-01T02:00:00+02:00", 1_714_521_600 * 10**9),
        ("2024-05-01T00:00:00", 1_714_521_600 * 10**9),
        ("1714521600", 1_714_521_600 * 10**9),
    ],
)
def test_start_time_formats(raw: str, ns: int) -> None:
    assert parse_start_time(raw) == ns
