"""``spanstream slo rules``: stdout or an atomically replaced file; one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.cli import main

SLOS = """
slos:
  - {name: cart-avail, service: cart, sli: availability, objective: 99.9}
"""


@pytest.fixture
def slo_file(tmp_path: Path) -> Path:
    path = tmp_path / "slos.yaml"
    path.write_text(SLOS)
    return path


def test_rules_go_to_stdout(slo_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slo", "rules", "--slo-file", str(slo_file)]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert document["groups"][0]["name"] == "slo:cart-avail"


def test_output_replaces_the_file(slo_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "rules.yaml"
    out.write_text("old")
    assert main(["slo", "rules", "--slo-file", str(slo_file), "--output", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["groups"][0]["rules"][0]["labels"]["slo"] == "cart-avail"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_setting_names_the_file_when_no_option_does(
    slo_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SPANSTREAM_SLO_FILE", str(slo_file))
    assert main(["slo", "rules"]) == 0
    assert "slo:cart-avail" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "no SLO file: give --slo-file or set SPANSTREAM_SLO_FILE"),
        ("slos: [{name: x}]", [], "slo 'x': service: missing"),
        (
            "slos: [{name: x, service: s, sli: latency, objective: 99, threshold_ms: 250}]",
            [],
            "slo 'x': threshold_ms=250: Prometheus counts only at a bucket bound",
        ),
        (SLOS, ["--output", "/nonexistent-dir/rules.yaml"], "--output /nonexistent-dir/"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("SPANSTREAM_SLO_FILE", raising=False)
    given = []
    if content is not None:
        path = tmp_path / "slos.yaml"
        path.write_text(content)
        given = ["--slo-file", str(path)]
    assert main(["slo", "rules", *given, *args]) != 0
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err, err
