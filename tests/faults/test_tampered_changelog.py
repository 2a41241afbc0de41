"""Scenario 12: malicious records in the detectors changelog, restored by a restarted worker.

The incident this guards against: a pickled payload written to
``<group>-windows-detectors-changelog`` ran code on the next restart, then
every close failed ("closing windows failed" each second, no alert again).
While wall-clock-paced traffic flows, the worker is SIGKILLed, two records
are appended to the changelog under keys of live series (the version 1 value
shape, base64 pickle in a JSON string, and a raw pickle; each would create a
marker file if unpickled), and the worker restarts and restores the table.

Checks: no marker file (nothing ran), each record counted once in
``spanstream_state_rejected_total`` and logged once, windows keep closing
after the rejections (``spanstream_windows_closed_total`` grows), no close
failed, lost = 0, dup_rows = 0, windows equal; the recovery time is reported.
"""

from __future__ import annotations

import base64
import os
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from pipeline.errors import ServiceUnavailable
from pipeline.settings import load_settings
from pipeline.tables import key_bytes, partition_of
from pipeline.windows.assembler import series_key
from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES, Rig, wait_until

pytestmark = pytest.mark.faults

STREAM_S = 100.0
KILL_AT = 0.4
RECOVERY_TIMEOUT = 180.0
REJECTED = "spanstream_state_rejected_total"
CLOSE_FAILED = "closing windows failed"


class _Touch:
    """Unpickling this runs ``touch <path>``: what the tampered record carried."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def _records(rig: Rig, workdir: Path) -> list[tuple[str, bytes, Path, str]]:
    """(series key, value, marker, expected reason) for the two busiest stored series."""
    rows = rig.worker.query(
        "SELECT ServiceName, SpanName, sum(Requests) AS r FROM spanstream_red_metrics "
        "GROUP BY 1, 2 ORDER BY r DESC, 1, 2 LIMIT 2"
    )
    (a, b) = [series_key(str(s), str(o)) for s, o, _ in rows]
    legacy, raw = workdir / "owned-legacy", workdir / "owned-raw"
    legacy_value = b'"' + base64.b64encode(pickle.dumps(_Touch(legacy))) + b'"'
    return [
        (a, legacy_value, legacy, "legacy_pickle"),
        (b, pickle.dumps(_Touch(raw)), raw, "bad_json"),
    ]


def _write_changelog(rig: Rig, records: list[tuple[str, bytes, Path, str]]) -> str:
    """Append the records to the detectors changelog, each on its key's partition."""
    settings = load_settings({**rig.env, "SPANSTREAM_KAFKA": rig.bootstrap})
    topic = settings.detectors_changelog_topic
    producer = Producer({"bootstrap.servers": rig.bootstrap, "acks": "all"})
    for key, value, _, _ in records:
        partition = partition_of(key, settings.partials_partitions)
        producer.produce(topic, value=value, key=key_bytes(key), partition=partition)
    assert producer.flush(30) == 0, "the tampered records were not acked"
    return topic


def _closed_windows(rig: Rig) -> int:
    try:
        return rig.worker.count("spanstream_red_metrics")
    except (OSError, ServiceUnavailable):  # busy or still starting: ask again
        return 0


def _rejected(rig: Rig) -> dict[str, float]:
    samples = rig.worker.metric_samples(REJECTED)
    return {labels: n for labels, n in samples.items() if 'table="detectors"' in labels}


def test_a_tampered_detectors_changelog_record_is_rejected_and_windows_keep_closing(
    make_rig: MakeRig, tmp_path: Path
) -> None:
    rig = make_rig()
    rig.start()
    rate = TRACES / STREAM_S
    stream = ("--rate", f"{rate:g}", "--duration", f"{STREAM_S:g}", "--diurnal-amplitude", "0")
    with rig.generating("stream", TRACES + 1000, *stream, start=None):
        began = time.monotonic()

        def ready_to_kill() -> bool:
            return time.monotonic() - began >= STREAM_S * KILL_AT and _closed_windows(rig) > 0

        wait_until(ready_to_kill, STREAM_S + RECOVERY_TIMEOUT, "closed windows before the kill")
        records = _records(rig, tmp_path)
        seen = rig.safe_count() or 0
        rig.kill()
        topic = _write_changelog(rig, records)
        restart = rig.start()
        rig.await_recovery(restart, seen, 10**9, RECOVERY_TIMEOUT)

        def both_rejected() -> bool:
            return sum(_rejected(rig).values()) >= len(records)

        to_reject = wait_until(both_rejected, RECOVERY_TIMEOUT, "both tampered records counted")
        restart_to_rejected = time.monotonic() - restart.at
        closed_at_rejection = rig.worker.metric("spanstream_windows_closed_total")
        wait_until(
            lambda: rig.worker.metric("spanstream_windows_closed_total") > closed_at_rejection,
            RECOVERY_TIMEOUT,
            "windows closing after the rejections",
        )
        rejected = _rejected(rig)

    current_log = rig.worker.log_file.read_text(errors="replace").rsplit("--- start ", 1)[-1]
    acc = rig.finish(
        "tampered-changelog",
        notes=f"SIGKILL at {KILL_AT:.0%}, 2 pickle records appended to {topic}, restart",
        rejected=rejected,
        markers_created=[str(m) for *_, m, _ in records if m.exists()],
        rejection_logs=current_log.count("detectors table: rejected the stored record"),
        close_failures_after_restart=current_log.count(CLOSE_FAILED),
        seconds_restart_to_both_rejected=round(restart_to_rejected, 1),
        seconds_recovery_to_both_rejected=round(to_reject, 1),
        windows_closed_by_restarted_worker=rig.worker.metric("spanstream_windows_closed_total"),
    )

    assert acc.extra["markers_created"] == [], "a tampered record ran code"
    for _, _, _, reason in records:
        assert rejected.get(f'{{reason="{reason}",table="detectors"}}') == 1.0, rejected
    assert acc.extra["rejection_logs"] == len(records)
    assert acc.extra["close_failures_after_restart"] == 0
    assert acc.faults == 1 and rig.worker.starts == 2
    assert acc.lost == 0, f"{acc.lost} spans lost"
    assert acc.dup_rows == 0 and acc.unexpected == 0
    assert acc.windows_equal, f"windows differ: {acc.extra.get('windows_by_start')}"
