"""Scenario 6: the Kafka broker is SIGKILLed mid-stream, then restarted on the same port and data.

The test runs its own broker (the session broker is shared by other tests).
The worker must ride the outage out in the same process and resume.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import ServiceUnavailable
from pipeline.local.kafka import LocalKafka, kafka_installed
from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES, Restart, wait_until

pytestmark = pytest.mark.faults

#: How long the broker stays down (a fault parameter, not a synchronization).
OUTAGE_S = 10.0
RECOVERY_TIMEOUT = 240.0


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    if not kafka_installed():
        pytest.skip("Kafka jars or java missing: run infra/kafka/kafka.sh install")
    broker = LocalKafka(tmp_path / "own-kafka")
    try:
        broker.start()
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield broker
    finally:
        if broker.pid is not None:
            broker.stop()


def test_broker_kill_and_restart_loses_nothing(make_rig: MakeRig, own_kafka: LocalKafka) -> None:
    rig = make_rig(bootstrap=own_kafka.bootstrap)
    rig.start()
    pid = rig.worker.pid
    rig.generate("stream", TRACES, "--split-traces", "0.2")
    total = len(rig.expected())
    seen = rig.wait_progress(int(total * 0.4), RECOVERY_TIMEOUT, "40% stored")

    own_kafka.kill()
    rig.faults += 1
    down_at = time.monotonic()
    # the worker must survive the outage: poll it for OUTAGE_S seconds
    wait_until(
        lambda: not rig.worker.running or time.monotonic() - down_at >= OUTAGE_S,
        OUTAGE_S + 5,
        "outage",
    )
    assert rig.worker.running, f"worker exited while the broker was down: {rig.worker.log_tail()}"
    during = rig.safe_count() or 0
    began = time.monotonic()
    own_kafka.restart()
    broker_restart_s = time.monotonic() - began
    restart = Restart(began)
    rig.restarts.append(restart)  # recovery is measured from the broker's restart
    rig.await_recovery(restart, during, total, RECOVERY_TIMEOUT)

    acc = rig.finish(
        "broker-kill9-restart",
        stored_before_kill=seen,
        stored_during_outage=during,
        broker_restart_s=round(broker_restart_s, 1),
        same_worker_pid=rig.worker.pid == pid,
        notes=f"broker SIGKILL at 40%, down {OUTAGE_S:.0f}s; recovery from broker restart",
    )

    assert rig.worker.pid == pid and rig.worker.starts == 1, "the worker was replaced"
    assert acc.lost == 0, f"{acc.lost} spans lost"
    assert acc.dup_rows == 0 and acc.unexpected == 0
