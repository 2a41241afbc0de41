"""``spanstream worker`` refuses a bad SLO file in one line, before touching Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "slos:\n  - {name: pay, service: p, sli: availability, objective: 100}\n",
            "slo 'pay': objective=100: expected a percentage",
        ),
        (
            "slos:\n  - {name: fast, service: p, sli: latency, objective: 99}\n",
            "slo 'fast': threshold_ms: required for a latency SLI",
        ),
        ("slos: [\n", "invalid YAML"),
    ],
)
def test_an_invalid_slo_file_stops_the_worker_with_one_line(
    tmp_path: Path, content: str, message: str
) -> None:
    slo_file = tmp_path / "slos.yaml"
    slo_file.write_text(content)
    env = {**os.environ, "SPANSTREAM_SLO_FILE": str(slo_file), "SPANSTREAM_KAFKA": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "worker", "--datadir", str(tmp_path / "f")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("spanstream: error:")]
    assert len(lines) == 1 and message in lines[0] and str(slo_file) in lines[0], done.stderr
