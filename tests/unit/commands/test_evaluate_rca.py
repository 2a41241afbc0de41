"""``spanstream evaluate --rca``: options refused before anything runs, one clear line."""

from __future__ import annotations

import pytest

from pipeline.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rca-seeds", "one"], "--rca-seeds 'one'"),
        (["--rca-seeds", ","], "at least one seed"),
        (["--rca-rate", "0"], "--rca-rate must be > 0"),
        (["--rca-window", "0"], "--rca-window"),
    ],
)
def test_bad_options_are_one_line_and_non_zero(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["evaluate", "--rca", *args])
    err = capsys.readouterr().err
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1


def test_help_lists_the_rca_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert "--rca" in out and "--rca-seeds" in out
