"""Scenario 11: reprocess the whole input after resetting the consumer group to offset 0.

Two resets, because they leave different commit metadata behind:

``keep-marks``
    offset 0 committed with each partition's previous metadata (the worker's
    ``d``/``w`` marks), as a tool that preserves metadata would.
``to-earliest``
    offset 0 with *empty* metadata: what ``kafka-consumer-groups
    --reset-offsets --to-earliest --execute`` does (it commits a bare
    OffsetAndMetadata). The worker then has no write mark and no delivered
    mark to go by.

Either way the replay must leave ``otel_traces`` unchanged (no duplicate rows),
the windows unchanged, and replayed alerts must carry the alert ids already
published.
"""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.faults.conftest import MakeRig
from tests.faults.harness import wait_until

pytestmark = pytest.mark.faults

#: 450 s of stream time at 5 traces/s (~45k spans, 45 windows of 10 s): the detectors
#: warm up on 30 windows, so the error burst at 330 s raises alerts to replay.
REPLAY_TRACES = 2250  # not scaled with SPANSTREAM_FAULTS_TRACES: the warm-up needs it
RATE = ("--rate", "5")
ANOMALY = "error_burst:service=payment,start=330,duration=60,rate=0.6"


def _alerts(rig: object) -> list[tuple[str, int, str]]:
    """(id, version, status) of every record on the alerts topic: alerts by their
    ``alert_id``, incident records by their ``incident_id`` (both must survive a replay)."""
    out = []
    for msg in rig.read_topic(rig.topics.alerts):  # type: ignore[attr-defined]
        doc = json.loads(msg.value())
        key = doc["incident_id"] if doc.get("kind") == "incident" else doc["alert_id"]
        out.append((key, doc["version"], doc["status"]))
    return out


@pytest.mark.parametrize("reset", ["keep-marks", "to-earliest"])
def test_replay_from_offset_zero_adds_no_rows(make_rig: MakeRig, reset: str) -> None:
    rig = make_rig()
    rig.start()
    rig.generate("stream", REPLAY_TRACES, *RATE, "--split-traces", "0.2", "--anomaly", ANOMALY)
    rig.drain()
    rig.wait_windows()
    rows_before = rig.worker.count("otel_traces")
    windows_before = rig.windows()
    alerts_before = _alerts(rig)
    rig.worker.stop()

    committed = rig.committed()
    consumer = Consumer({"bootstrap.servers": rig.bootstrap, "group.id": rig.topics.group})
    try:
        offsets = [
            TopicPartition(rig.topics.input, p, 0, metadata=marks)
            if reset == "keep-marks"
            else TopicPartition(rig.topics.input, p, 0)  # no metadata, as the Kafka CLI
            for p, (_, marks) in committed.items()
        ]
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()
    reset_to = rig.committed()
    assert all(o == 0 for o, _ in reset_to.values()), reset_to
    rig.faults += 1

    restart = rig.start()
    ends = rig.high_watermarks(rig.topics.input)

    def replayed() -> bool:
        rig.check_ingest_alive()
        now = rig.committed()
        return all(now[p][0] == ends[p] for p in ends)

    wait_until(replayed, 300, "the replay committed to the end")
    restart.recovery_s = time.monotonic() - restart.at  # here: time to reprocess everything
    # replayed partials, if any, reach the windows: wait until the table stops changing
    last = [rig.windows(), time.monotonic()]

    def windows_settled() -> bool:
        now = rig.windows()
        if now != last[0]:
            last[:] = [now, time.monotonic()]
        return time.monotonic() - float(last[1]) > 20  # type: ignore[arg-type]

    wait_until(windows_settled, 180, "windows settled after the replay")
    rows_after = rig.worker.count("otel_traces")
    windows_after = rig.windows()
    alerts_after = _alerts(rig)
    replayed_alerts = alerts_after[len(alerts_before) :]
    before_ids = {a for a, _, _ in alerts_before}
    new_ids = sorted({a for a, _, _ in replayed_alerts} - before_ids)
    changed = sorted(k for k in windows_after if windows_after.get(k) != windows_before.get(k))

    acc = rig.finish(
        f"replay-reset-{reset}",
        rows_before=rows_before,
        rows_after=rows_after,
        alerts_before=len(alerts_before),
        alerts_replayed=len(replayed_alerts),
        new_alert_ids=new_ids,
        windows_changed=len(changed),
        windows_changed_sample=[list(k) for k in changed[:5]],
        reprocess_s=round(restart.recovery_s, 1),
        notes=f"reset to 0 ({reset}); rows {rows_before}->{rows_after}, "
        f"alerts {len(alerts_before)} + {len(replayed_alerts)} replayed "
        f"({len(new_ids)} new ids), {len(changed)} window rows changed",
    )

    assert rows_after == rows_before, f"replay added {rows_after - rows_before} rows"
    assert acc.dup_rows == 0 and acc.lost == 0
    assert alerts_before, "no alerts to replay: the alert id check proved nothing"
    assert not new_ids, f"replayed alerts with new ids: {new_ids}"
    # Without marks the replayed records are cut one by one, so the window stage drops
    # each as an exact repeat instead of counting it late in a re-closed window.
    assert not changed, f"{len(changed)} window rows changed, e.g. {changed[:3]}"
