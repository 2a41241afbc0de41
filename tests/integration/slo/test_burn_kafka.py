"""SLO burn alerts through a real worker and a real Kafka broker.

One simulated stream with two error bursts at once: payment at ~14x its 99 % SLO's
budget (14 % errors) and shipping at ~2x (2 %), with a page rule of 10x over 60 s and
20 s (10 s windows, set in the SLO file so the test is short). The page must fire for
payment in exactly the window the burn-rate core computes from the manifest (within 6
windows of the burst's start) and resolve after it; shipping must not page; and the
``spanstream_slo_burn`` rows must hold the exact pre-sampling counts of every window
(latency SLI included: requests at most the threshold, counted in the partials).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.generate.manifest import Manifest, read_manifest
from pipeline.local.worker import LocalWorker, delete_topics, prepare_topics, unique_names
from pipeline.slo.burn import evaluate
from pipeline.slo.ring import Ring
from pipeline.slo.spec import parse_slos
from tests.harness.streams import consume, run_generate

pytestmark = pytest.mark.integration

NS = 1_000_000_000
WINDOW = 10
BURST_START, BURST_SECONDS, STREAM_SECONDS = 120, 90, 300
SLO_FILE = """\
burn_alerts:
  - {severity: page, long_window: 60s, short_window: 20s, factor: 10}
slos:
  - {name: payment-avail, service: payment, sli: availability, objective: 99}
  - {name: shipping-avail, service: shipping, sli: availability, objective: 99}
  - {name: payment-fast, service: payment, sli: latency, threshold_ms: 40, objective: 50}
"""
TIMEOUT = 240.0


@pytest.fixture
def env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    slo_file = tmp_path / "slos.yaml"
    slo_file.write_text(SLO_FILE)
    env = {
        **unique_names("slo"),
        "SPANSTREAM_WINDOW_SECONDS": str(WINDOW),
        "SPANSTREAM_ALLOWED_LATENESS_SECONDS": "5",
        "SPANSTREAM_DECISION_WAIT_SECONDS": "2",
        "SPANSTREAM_SLO_FILE": str(slo_file),
    }
    prepare_topics(kafka_bootstrap, env)
    yield env
    delete_topics(kafka_bootstrap, env)


def _generate(bootstrap: str, env: dict[str, str], tmp: Path) -> tuple[Manifest, int]:
    manifest = tmp / "manifest.jsonl"
    start = int(time.time()) // 60 * 60 - 1800
    run_generate(bootstrap, env["SPANSTREAM_INPUT_TOPIC"], [
        "--start-time", str(start), "--diurnal-amplitude", "0", "--manifest", str(manifest),
        "--rate", "30", "--duration", str(STREAM_SECONDS), "--spans-per-trace", "4",
        "--seed", "16", "--error-rate", "0",
        "--anomaly", f"error_burst:service=payment,start={BURST_START},"
                     f"duration={BURST_SECONDS},rate=0.14",
        "--anomaly", f"error_burst:service=shipping,start={BURST_START},"
                     f"duration={BURST_SECONDS},rate=0.02",
    ])  # fmt: skip
    return read_manifest(manifest), start * NS


def _reference(manifest: Manifest) -> dict[tuple[str, int], tuple[int, int]]:
    """(SLO, window start ns) -> (good, total) from every sent span."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for s in manifest.spans():
        start = s.start_ns - s.start_ns % (WINDOW * NS)
        checks = {"payment-avail": not s.is_error, "payment-fast": s.duration_ns <= 40_000_000}
        if s.service == "shipping":
            checks = {"shipping-avail": not s.is_error}
        elif s.service != "payment":
            continue
        for name, good in checks.items():
            g, t = out.get((name, start), (0, 0))
            out[(name, start)] = (g + int(good), t + 1)
    return out


def _expected_onset(reference: dict[tuple[str, int], tuple[int, int]]) -> int | None:
    """The first window the burn-rate core pages at, fed the reference counts."""
    slo = parse_slos(__import__("yaml").safe_load(SLO_FILE), "slos").slos[0]
    fine, coarse = Ring(WINDOW * NS, 6), Ring(WINDOW * NS, 10**5)
    for start in sorted(s for (name, s) in reference if name == slo.name):
        fine.add(start, *reference[(slo.name, start)])
        coarse.add(start, *reference[(slo.name, start)])
        if evaluate(slo, fine, coarse, start, WINDOW * NS).firing:
            return start
    return None


def _burn_alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """The SLO burn alerts on the topic, once one resolved (the end of the episode)."""
    seen: list[dict[str, Any]] = []

    def resolved(messages: list[Any]) -> bool:
        seen[:] = [json.loads(m.value()) for m in messages]
        return any(a.get("kind") == "slo_burn" and a["status"] == "resolved" for a in seen)

    try:
        consume(bootstrap, topic, resolved)
    except AssertionError as exc:
        shown = [(a.get("slo"), a["status"], a["window_start"], a.get("burn_rates")) for a in seen]
        raise AssertionError(f"{exc}: {shown}") from None
    return [a for a in seen if a.get("kind") == "slo_burn"]


def _rows(worker: LocalWorker) -> dict[tuple[str, int], list[Any]]:
    sql = (
        "SELECT Slo, toUnixTimestamp64Milli(WindowStart), Good, Total, BurnRates, Firing "
        "FROM spanstream_slo_burn FINAL"
    )
    return {(r[0], int(r[1]) * 1_000_000): r[2:] for r in worker.query(sql)}


def test_a_14x_burst_pages_in_the_expected_window_and_a_2x_one_does_not(
    kafka_bootstrap: str, env: dict[str, str], tmp_path: Path
) -> None:
    with LocalWorker(
        tmp_path / "w1", bootstrap=kafka_bootstrap, store_url=f"chdb:{tmp_path / 'chdb'}", env=env
    ) as worker:
        manifest, stream_start = _generate(kafka_bootstrap, env, tmp_path)
        reference = _reference(manifest)

        def counted() -> dict[tuple[str, int], tuple[int, int]]:
            return {k: (int(v[0]), int(v[1])) for k, v in _rows(worker).items() if int(v[1])}

        # Exact pre-sampling counts in every window, availability and latency alike (a
        # window evaluated before all its series closed is written again once they did).
        worker.wait_for(lambda: counted() == reference, TIMEOUT, "exact SLO rows")
        rows = _rows(worker)
        assert worker.metric("spanstream_state_rejected_total") == 0
        assert worker.metric("spanstream_slo_counts_total") > 0

    burn = _burn_alerts(kafka_bootstrap, env["SPANSTREAM_ALERT_TOPIC"])
    assert {a["slo"] for a in burn} == {"payment-avail"}, burn  # shipping at ~2x never pages
    assert max(v[2]["20s"] for k, v in rows.items() if k[0] == "shipping-avail") < 10
    firing = [a for a in burn if a["status"] == "firing"]
    onset = int(datetime.fromisoformat(firing[0]["window_start"]).timestamp()) * NS
    expected = _expected_onset(reference)
    burst = stream_start + BURST_START * NS
    assert onset == expected and burst < onset <= burst + 6 * WINDOW * NS
    assert firing[0]["severity"] == "critical" and firing[0]["exemplar_trace_ids"]
    resolved = [a for a in burn if a["status"] == "resolved"]
    assert [a["alert_id"] for a in resolved] == [firing[0]["alert_id"]]
    assert {a["alert_id"] for a in firing} == {firing[0]["alert_id"]}
    print(f"page at window {(onset - burst) // NS}s after the burst start; "
          f"{len(firing)} firing versions, resolved at {resolved[0]['window_start']}")  # fmt: skip
