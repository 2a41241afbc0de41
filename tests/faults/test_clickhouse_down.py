"""Scenario 4: ClickHouse unavailable for 30 s and for 5 minutes while traffic keeps coming.

chdb runs inside the worker, so there is no server to stop: the workers run
under ``python -m tests.harness.outage``, which wraps the store so that
every call fails, as the native backend fails against a stopped server, while
a switch file exists. Traffic is paced by the wall clock (RATE traces/s) and
keeps flowing through the outage.

What must hold: the worker never exits (no crash loop), nothing is committed
while nothing can be written, fetching pauses once
``SPANSTREAM_MAX_BUFFERED_TRACES`` (here :data:`MAX_BUFFERED`) traces wait in
memory, so the rest of the outage's traffic waits in Kafka and the RSS stays
under :data:`RSS_BOUND_MB`; after the outage every span is stored once and
counted in its window or as late (after the 30 s outage: in its window).
``SPANSTREAM_FAULTS_LONG_OUTAGE_S`` shortens the long outage for a quick local
run (CI keeps 300 s).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.faults.conftest import MakeRig
from tests.faults.harness import POLL_S, Rig, wait_until

pytestmark = pytest.mark.faults

LONG_OUTAGE_S = float(os.environ.get("SPANSTREAM_FAULTS_LONG_OUTAGE_S", "300"))
RATE = 20  # traces/s, paced by the wall clock
BEFORE_S, AFTER_S = 20.0, 40.0
MAX_BUFFERED = 2000
RSS_BOUND_MB = 1500
TIMEOUT = 240.0


def committed_total(rig: Rig) -> int:
    return sum(max(offset, 0) for offset, _ in rig.committed().values())


@pytest.mark.parametrize("outage_s", [30.0, LONG_OUTAGE_S], ids=["30s", "long"])
def test_clickhouse_outage_backpressures_and_loses_nothing(
    make_rig: MakeRig, tmp_path: Path, outage_s: float
) -> None:
    switch = tmp_path / "clickhouse-down"
    rig = make_rig(
        entry="tests.harness.outage",
        SPANSTREAM_OUTAGE_SWITCH=str(switch),
        SPANSTREAM_MAX_BUFFERED_TRACES=str(MAX_BUFFERED),
    )
    rig.start()
    seconds = BEFORE_S + outage_s + AFTER_S
    stream = ("--rate", str(RATE), "--duration", str(seconds), "--diurnal-amplitude", "0")
    with rig.generating("stream", int(RATE * seconds) + 1000, *stream, start=None):
        rig.wait_progress(RATE * 5 * 10, TIMEOUT, "traffic stored before the outage")
        outage = observe_outage(rig, switch, outage_s)
        switch.unlink()
        rig.faults += 1
        ended = time.monotonic()
        rig.wait_progress(outage["stored"] + 1, TIMEOUT, "writes after the outage")
        recovery_s = time.monotonic() - ended

    acc = rig.finish(
        f"clickhouse-down-{outage_s:.0f}s",
        outage_s=outage_s,
        write_recovery_s=round(recovery_s, 1),
        **outage,
        notes=f"store refuses every call for {outage_s:.0f}s at {RATE} traces/s; "
        f"SPANSTREAM_MAX_BUFFERED_TRACES={MAX_BUFFERED}",
    )

    assert rig.worker.starts == 1 and rig.worker.running, "the worker restarted or exited"
    assert outage["committed_during"] == 0, "offsets committed while nothing could be written"
    held = outage["consumed_during"]
    produced = outage["produced_during"]
    if produced > 2 * MAX_BUFFERED:  # the bound was reached: the rest waited in Kafka
        assert held <= MAX_BUFFERED + 1000, f"{held} records consumed during the outage"
    assert acc.peak_rss_mb < RSS_BOUND_MB
    assert acc.lost == 0, f"{acc.lost} spans lost"
    assert acc.dup_rows == 0 and acc.unexpected == 0
    if outage_s <= 30:
        assert acc.windows_equal, f"windows differ: {acc.extra.get('windows_by_start')}"
    # The long outage asserts only the accounting: a series first heard from a source
    # inside a post-outage backlog is not held by it (docs/reliability.md, known limits),
    # so a few of its spans may count late. Never silently: every span is in Requests
    # or LateSpans.
    assert acc.window_requests + acc.window_late == acc.window_reference


def observe_outage(rig: Rig, switch: Path, outage_s: float) -> dict[str, int]:
    """Hold the store down for ``outage_s``; what the worker and the topic did meanwhile."""
    stored = rig.safe_count() or 0
    switch.touch()
    began = time.monotonic()
    # An insert already running when the switch appeared may still land and be committed;
    # inserts and their commits run one after the other on the ingest thread, so once one
    # has been refused nothing written before the outage is still on its way.
    wait_until(
        lambda: "simulated while" in rig.worker.log_file.read_text(errors="replace"),
        30,
        "the first refused insert",
    )
    committed = committed_total(rig)
    consumed = rig.worker.metric("spanstream_messages_in_total")
    produced = sum(rig.high_watermarks(rig.topics.input).values())

    def over() -> bool:
        rig.check_ingest_alive()
        return time.monotonic() - began >= outage_s

    wait_until(over, outage_s + 30, "the outage", poll_s=POLL_S * 5)
    return {
        "stored": stored,
        "committed_during": committed_total(rig) - committed,
        "consumed_during": int(rig.worker.metric("spanstream_messages_in_total") - consumed),
        "produced_during": sum(rig.high_watermarks(rig.topics.input).values()) - produced,
        "refused_calls_logged": rig.worker.log_file.read_text().count("simulated while"),
    }
