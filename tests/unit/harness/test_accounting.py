"""The fault suite's accounting: manifest -> expected set and windows; rows -> Accounting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.generate.manifest import Manifest, ManifestSpan
from tests.harness.accounting import (
    Accounting,
    account,
    append_result,
    compare_windows,
    expected_spans,
    main,
    read_results,
    reference_windows,
    render_table,
)

S = 1_000_000_000


def _span(
    trace: str, span: str, ts_s: float, service: str = "cart", name: str = "GET"
) -> ManifestSpan:
    return ManifestSpan(trace, span, service, name, int(ts_s * S), 1000, False)


@pytest.fixture
def manifest() -> Manifest:
    m = Manifest()
    m.traces["t1"] = [_span("t1", "a", 1), _span("t1", "b", 9, service="pay")]
    m.traces["t2"] = [_span("t2", "c", 11), _span("t2", "d", 12, name="POST")]
    return m


def test_expected_spans_are_every_trace_and_span_id(manifest: Manifest) -> None:
    assert expected_spans(manifest) == {("t1", "a"), ("t1", "b"), ("t2", "c"), ("t2", "d")}


def test_reference_windows_key_by_service_operation_and_window_start_ms(
    manifest: Manifest,
) -> None:
    ref = reference_windows(manifest.spans(), window_s=10)
    assert ref == {
        ("cart", "GET", 0): 1,
        ("pay", "GET", 0): 1,
        ("cart", "GET", 10_000): 1,
        ("cart", "POST", 10_000): 1,
    }
    by_op = reference_windows(manifest.spans(), window_s=60, op=lambda s: "op")
    assert by_op == {("cart", "op", 0): 3, ("pay", "op", 0): 1}


def test_windows_before_the_epoch_floor() -> None:
    ref = reference_windows([_span("t", "s", -0.5)], window_s=10)
    assert ref == {("cart", "GET", -10_000): 1}


def test_clean_run_accounts_for_everything(manifest: Manifest) -> None:
    expected = expected_spans(manifest)
    stored = [(t, s, 1) for t, s in sorted(expected)]
    ref = reference_windows(manifest.spans(), window_s=10)
    acc = account(
        "clean", expected, stored, dlq=0, windows={k: (v, 0) for k, v in ref.items()},
        reference=ref, faults=3, recovery_s=2.5,
    )  # fmt: skip
    assert (acc.in_spans, acc.unique_out, acc.lost, acc.dup_rows, acc.unexpected) == (4, 4, 0, 0, 0)
    assert acc.ok and acc.windows_equal and acc.window_reference == 4
    assert acc.faults == 3 and acc.recovery_s == 2.5


def test_losses_duplicates_and_strangers_are_counted(manifest: Manifest) -> None:
    expected = expected_spans(manifest)
    stored = [("t1", "a", 3), ("t1", "b", 1), ("zz", "zz", 2)]
    acc = account("bad", expected, stored, dlq=5)
    assert acc.lost == 2  # t2's spans
    assert acc.dup_rows == 3  # 2 extra rows of (t1, a), 1 extra of (zz, zz)
    assert acc.unexpected == 1 and acc.dlq == 5
    assert not acc.ok and acc.windows_equal is None


def test_sampled_out_spans_count_as_decided(manifest: Manifest) -> None:
    expected = expected_spans(manifest)
    acc = account(
        "sampled", expected, [("t1", "a", 1), ("t1", "b", 1)], dlq=0,
        sampled_out=[("t2", "c"), ("t2", "d"), ("nope", "x")],
    )  # fmt: skip
    assert acc.unique_out == 4 and acc.lost == 0 and acc.sampled_out == 2


def test_window_comparison_reports_late_and_missing() -> None:
    ref = {("s", "o", 0): 5, ("s", "o", 10_000): 5}
    observed = {("s", "o", 0): (5, 0), ("s", "o", 10_000): (3, 0), ("s", "o", 20_000): (0, 2)}
    cmp = compare_windows(ref, observed)
    assert not cmp.equal and cmp.mismatched == 1
    assert (cmp.requests, cmp.late, cmp.reference, cmp.accounted) == (8, 2, 10, 10)
    missing = compare_windows(ref, {("s", "o", 0): (5, 0)})
    assert missing.mismatched == 1
    extra = compare_windows(ref, {**dict.fromkeys(ref, (5, 0)), ("x", "o", 0): (1, 0)})
    assert extra.mismatched == 1


def test_results_round_trip_and_the_last_row_of_a_scenario_wins(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "results.jsonl"
    append_result(path, Accounting("a", 1, 0, 1, 0, 0, notes="first"))
    append_result(path, Accounting("b", 2, 2, 0, 0, 1, extra={"kills": [1, 2]}))
    append_result(path, Accounting("a", 1, 1, 0, 0, 0))
    rows = read_results(path)
    assert [(r.scenario, r.lost) for r in rows] == [("a", 0), ("b", 0)]
    assert rows[1].extra == {"kills": [1, 2]}
    doc = json.loads(path.read_text().splitlines()[1])
    assert doc["scenario"] == "b" and doc["dlq"] == 1
    # unknown keys (a newer writer) are ignored
    with path.open("a") as f:
        f.write(json.dumps({**doc, "scenario": "c", "future_field": 1}) + "\n")
    assert read_results(path)[-1].scenario == "c"


def test_table_has_one_row_per_scenario_and_the_notes() -> None:
    rows = [
        Accounting("kill3", 100, 100, 0, 0, 0, faults=3, recovery_s=4.0, peak_rss_mb=812.3,
                   windows_equal=False, window_requests=70, window_late=30,
                   window_reference=100, notes="late spans from the backlog"),
        Accounting("dup", 10, 10, 0, 2, 0),
    ]  # fmt: skip
    table = render_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| scenario | in | unique_out | lost | dup_rows | dlq |")
    assert "| kill3 | 100 | 100 | 0 | 0 | 0 | 3 | 4.0 | 812.3 | NO | 70+30/100 |" in table
    assert "| dup | 10 | 10 | 0 | 2 | 0 | 0 | - | 0.0 | - | - |" in table
    assert lines[-1] == "- kill3: late spans from the backlog"


def test_summarize_prints_the_table_and_fails_on_a_bad_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.jsonl"
    append_result(path, Accounting("ok", 3, 3, 0, 0, 0))
    assert main(["summarize", str(path)]) == 0
    assert "| ok | 3 | 3 | 0 | 0 |" in capsys.readouterr().out
    append_result(path, Accounting("lossy", 3, 2, 1, 0, 0))
    assert main(["summarize", str(path)]) == 1
    assert "| lossy | 3 | 2 | 1 |" in capsys.readouterr().out
