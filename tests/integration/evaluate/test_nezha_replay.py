"""A small synthetic Nezha-shaped clip set through a real broker and a real worker.

Two clips of one recording and a third after a gap, 10 s windows and a high
speedup keep it short. It checks the plumbing, not the detector: every replayed
span is counted in a closed window (none late at live pace), the last window
closes, and the report has one row per labelled fault on the closed-gap timeline.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from pipeline.evaluate.nezha import HEADER, NS_PER_S
from pipeline.evaluate.nezha_offline import evaluate, read_file
from pipeline.evaluate.nezha_replay import ReplayOptions, run

pytestmark = pytest.mark.integration

T0 = 1_661_140_000 * NS_PER_S  # 2022-08-22 03:46:40 UTC
PODS = ("frontend-579b9bff58-t2dbm", "cartservice-579f59597d-wc2lz")


def write_clip(path: Path, start_s: int, seconds: int, rng: random.Random, slow: int = 1) -> int:
    """``seconds`` of traffic, 4 traces a second (frontend -> cartservice), ``slow`` times
    slower; returns spans."""
    lines = [HEADER]
    for i in range(seconds * 4):
        trace, root, child = rng.randbytes(16).hex(), rng.randbytes(8).hex(), rng.randbytes(8).hex()
        start = T0 + (start_s * NS_PER_S) + i * NS_PER_S // 4
        ms = rng.randint(5, 20) * slow
        end = start + ms * 1_000_000
        lines.append(f"{trace},{root},root,{PODS[0]},GET /cart,{start},{end},{ms * 1000}\n")
        lines.append(f"{trace},{child},{root},{PODS[1]},GetCart,{start + 1000},{end - 1000},1\n")
    path.write_text("".join(lines))
    return 2 * seconds * 4


def make_dataset(root: Path) -> int:
    rng = random.Random(7)
    (root / "trace").mkdir(parents=True)
    spans = write_clip(root / "trace" / "03_47_trace.csv", 0, 30, rng)
    spans += write_clip(root / "trace" / "03_48_trace.csv", 30, 30, rng)
    # After a gap, the fault: every request 20x slower.
    spans += write_clip(root / "trace" / "03_55_trace.csv", 480, 30, rng, slow=20)
    fault = {"inject_time": "2022-08-22 03:54:30", "inject_timestamp": "0"}
    fault |= {"inject_pod": PODS[1], "inject_type": "network_delay"}
    (root / "fault_list.json").write_text(json.dumps({"03": [fault]}))
    return spans


def test_replay_counts_every_span_and_scores_each_fault(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    spans = make_dataset(tmp_path / "nezha")
    options = ReplayOptions(
        tmp_path / "nezha",
        speedup=10.0,
        window_seconds=10,
        fault_seconds=20,
        workdir=tmp_path / "work",
        close_timeout_s=90.0,
    )
    dump = tmp_path / "windows.jsonl"
    options = dataclasses.replace(options, dump_windows=dump)
    result = run(options, bootstrap=kafka_bootstrap)
    assert (result.clips, result.spans, result.skipped_rows) == (3, spans, 0)
    assert result.windows_closed
    assert (result.requests_counted, result.late_spans) == (spans, 0)
    assert result.replay_s < 91  # 90 s of clips, the 7-minute gap closed
    (row,) = result.report.rows
    assert (row.fault.service, row.fault.kind, row.fault.clamped_s) == (
        "cartservice",
        "network_delay",
        10.0,
    )
    # The injection, 10 s before the third clip, maps to its start: ~60 s into the replay.
    assert abs(row.fault.inject_ns - (T0 + 60 * NS_PER_S)) < NS_PER_S // 2
    # Alerted (read from the alert topic), and the dumped windows judged offline agree.
    assert row.alerted
    assert evaluate(read_file(dump), fault_seconds=20) == result.report
