"""Scenario 1: SIGKILL the worker three times mid-stream, restarting it each time.

Traffic is paced by the wall clock (the whole stream over :data:`STREAM_S`), so
the kills land at 20, 40 and 60 % of the stream while it is still arriving.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES, wait_until

pytestmark = pytest.mark.faults

STREAM_S = 100.0
KILL_AT = (0.2, 0.4, 0.6)
RECOVERY_TIMEOUT = 180.0


def test_kill_9_three_times_loses_and_duplicates_nothing(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.start()
    rate = TRACES / STREAM_S
    stream = ("--rate", f"{rate:g}", "--duration", f"{STREAM_S:g}", "--diurnal-amplitude", "0")
    kills = []
    with rig.generating("stream", TRACES + 1000, *stream, "--split-traces", "0.2", start=None):
        began = time.monotonic()
        for share in KILL_AT:
            at = STREAM_S * share

            def reached(at: float = at) -> bool:
                return time.monotonic() - began >= at

            wait_until(reached, at + RECOVERY_TIMEOUT, f"{share:.0%} of the stream")
            seen = rig.safe_count() or 0
            rig.kill()
            restart = rig.start()
            rig.await_recovery(restart, seen, 10**9, RECOVERY_TIMEOUT)
            kills.append({"at_share": share, "stored_before_kill": seen})

    acc = rig.finish("kill9x3", kills=kills, notes=f"SIGKILL at {KILL_AT} of the stream's time")

    assert acc.faults == 3 and rig.worker.starts == 4
    assert acc.lost == 0, f"{acc.lost} spans lost"
    assert acc.dup_rows == 0 and acc.unexpected == 0
    assert acc.windows_equal, f"windows differ: {acc.extra.get('windows_by_start')}"
