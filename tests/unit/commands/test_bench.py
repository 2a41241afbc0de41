"""``spanstream bench`` options and the pure parts of :mod:`pipeline.bench` (no broker)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pipeline.bench import (
    BenchOptions,
    BenchResult,
    Filled,
    Measurement,
    PipelineRun,
    Sample,
    format_report,
    parse_metrics,
    steady_rate,
)
from pipeline.cli import build_parser, main


def test_help_documents_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split()).split(" options: ", 1)[1]
    options = set(re.findall(r"--[a-z][a-z-]+", text)) - {"--help"}
    assert {"--messages", "--spans-per-trace", "--bootstrap", "--keep-data", "--json"} <= options
    for option in options:
        after = text.split(option, 2)[-1]
        assert "(default:" in after.split(" --", 1)[0], option
    assert f"default: {BenchOptions().messages}" in text


def test_bootstrap_defaults_to_spanstream_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANSTREAM_KAFKA", "kafka.example:19092")
    assert build_parser().parse_args(["bench"]).bootstrap == "kafka.example:19092"
    monkeypatch.delenv("SPANSTREAM_KAFKA")
    assert build_parser().parse_args(["bench"]).bootstrap is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--messages", "0"], "--messages=0: must be >= 10"),
        (["--messages", "-5"], "--messages=-5: must be >= 10"),
        (["--spans-per-trace", "0"], "--spans-per-trace=0: must be within [1, 1000]"),
        (["--batch-traces", "-1"], "--batch-traces=-1: must be within [0, 1000]"),
        (["--timeout", "0"], "--timeout=0.0: must be > 0"),
        (["--progress-seconds", "-1"], "--progress-seconds=-1.0: must be > 0"),
        (["--bootstrap", " "], "--bootstrap='': expected host:port"),
        (["--max-buffered-traces", "0"], "--max-buffered-traces=0: must be >= 1"),
        (["--spans-per-trace", "100", "--batch-traces", "50"], "5000 spans/message"),
    ],
)
def test_bad_options_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--bootstrap", "127.0.0.1:1", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spanstream: error:") and message in err and "\n" not in err


def test_non_numbers_are_rejected_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--messages", "many"])
    assert exc.value.code == 2
    assert "--messages: invalid int value: 'many'" in capsys.readouterr().err


def test_parse_metrics_sums_labels_and_ignores_prefixes() -> None:
    page = "\n".join(
        [
            "# HELP spanstream_spans_in_total Spans decoded",
            'spanstream_spans_in_total{service="a"} 10.0',
            'spanstream_spans_in_total{service="b"} 5.0',
            "spanstream_spans_in_created 1.7e9",
            'spanstream_messages_in_total{encoding="otlp_proto"} 3.0',
        ]
    )
    got = parse_metrics(page)
    assert got["spanstream_spans_in_total"] == 15.0
    assert got["spanstream_messages_in_total"] == 3.0
    assert got["spanstream_unacked_messages"] == 0.0


def test_steady_rate_leaves_out_what_came_before_the_first_progress() -> None:
    samples = [
        Sample(10.0, 0, 0, 1, cpu_s=3.0),
        Sample(10.1, 50, 1000, 1, cpu_s=3.1),
        Sample(10.6, 300, 6000, 1, cpu_s=3.6),
        Sample(11.1, 500, 10000, 1, cpu_s=4.1),
        Sample(11.2, 500, 10000, 1, cpu_s=4.2),
    ]
    m = steady_rate(samples, 500)
    assert (m.messages, m.spans) == (450, 9000)
    assert m.seconds == pytest.approx(1.0)
    assert m.spans_per_s == pytest.approx(9000.0)
    assert m.spans_per_cpu_s == pytest.approx(9000.0)


def _result(ceiling_spans_s: float, pipeline_spans_s: float) -> BenchResult:
    run = PipelineRun(
        rate=Measurement(1000, int(pipeline_spans_s), 1.0, 1.0),
        messages_in=1000,
        spans_in=20000,
        drain_seconds=5.5,
        stored_spans=2000,
        kept_spans=2000,
        decode_errors=0,
        rss_start_bytes=300_000_000,
        rss_sampled_peak_bytes=500_000_000,
        rss_hwm_bytes=490_000_000,
        peak_unacked_messages=800,
        samples=70,
    )
    return BenchResult(
        options=BenchOptions(messages=1000),
        broker="test",
        partitions=6,
        filled=Filled(1000, 20000, 9_000_000, {0: 1000}, 1.0),
        ceiling=Measurement(1000, int(ceiling_spans_s), 1.0, 0.5),
        pipeline=run,
        protobuf_backend="upb",
    )


def test_ratio_is_pipeline_over_ceiling_and_the_table_shows_both() -> None:
    result = _result(200_000, 70_000)
    assert result.ratio == pytest.approx(0.35)
    assert result.cpu_ratio == pytest.approx(0.175)
    assert result.target_met
    data = result.to_dict()
    assert data["ratio"] == pytest.approx(data["pipeline"]["spans_per_s"] / 200_000)
    assert data["message"]["spans_per_message"] == 20.0
    text = format_report(result)
    assert "200,000" in text and "70,000" in text and "0.350" in text
    assert "x ceiling (spans/s): met" in text and "peak RSS 500 MB" in text
    assert "NOT met" in format_report(_result(200_000, 20_000))
    assert "WARNING" not in text


def test_a_run_shorter_than_twice_the_decision_wait_is_flagged() -> None:
    result = dataclasses.replace(_result(200_000, 70_000), decision_wait_s=5.0)
    assert "WARNING: the pipeline was measured over 1.0s" in format_report(result)


def test_the_fetch_bound_is_reported_and_flagged_when_reached() -> None:
    # 10,000 traces per 5 s decision wait, 20 spans per one-trace message: 40,000 spans/s.
    result = dataclasses.replace(_result(200_000, 36_000), decision_wait_s=5.0)
    bounded = dataclasses.replace(result, max_buffered_traces=10_000)
    assert bounded.fetch_bound_spans_per_s == pytest.approx(40_000)
    text = format_report(bounded)
    assert "a backlog is read at most ~40,000 spans/s (the pipeline ran at this bound" in text
    assert "ran at this bound" not in format_report(
        dataclasses.replace(bounded, max_buffered_traces=100_000)
    )
    assert "fetch bound" not in format_report(result)
    assert bounded.to_dict()["fetch_bound_spans_per_s"] == 40_000


def test_max_buffered_traces_reaches_the_worker_environment() -> None:
    from pipeline.bench.options import BenchNames
    from pipeline.bench.worker import _worker_env

    names = BenchNames.for_run("abc")
    assert "SPANSTREAM_MAX_BUFFERED_TRACES" not in _worker_env(names, BenchOptions())
    env = _worker_env(names, BenchOptions(max_buffered_traces=50_000))
    assert env["SPANSTREAM_MAX_BUFFERED_TRACES"] == "50000"
    assert env["SPANSTREAM_GROUP"] == names.group
