"""Scenario 1: SIGKILL the worker three times mid-stream, restarting each time."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES

pytestmark = pytest.mark.faults

KILL_AT = (0.2, 0.4, 0.6)
RECOVERY_TIMEOUT = 180.0


def test_kill_9_three_times_loses_and_duplicates_nothing(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.start()
    rig.generate("stream", TRACES, "--split-traces", "0.2")
    total = len(rig.expected())
    kills = []
    for share in KILL_AT:
        seen = rig.wait_progress(int(total * share), RECOVERY_TIMEOUT, f"{share:.0%} stored")
        rig.kill()
        restart = rig.start()
        rig.await_recovery(restart, seen, total, RECOVERY_TIMEOUT)
        kills.append({"at_share": share, "stored_before_kill": seen})

    acc = rig.finish("kill9x3", kills=kills, notes=f"SIGKILL at {KILL_AT} of stored spans")

    assert acc.faults == 3 and rig.worker.starts == 4
    assert acc.lost == 0, f"{acc.lost} spans lost"
    assert acc.dup_rows == 0 and acc.unexpected == 0
