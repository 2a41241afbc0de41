"""Scenario 3: scale 1 -> 2 -> 3 -> 2 workers in one group during a wall-clock-paced stream.

Workers join at 25 % and 50 % of the stream's duration (the group rebalances
partitions onto them) and one leaves cleanly (SIGTERM: its revoke commits what
it decided) at 75 %. Each worker has its own chdb store; the outcome is read
from all of them. A trace is *split* when its spans are stored by more than
one worker: its sampling was decided twice. Split traces send their second part
0.5 s after the first, well within the 2 s decision wait, so that a part
arriving after its trace was decided (a late fragment, which a single worker
also decides on its own, following its cached decision) does not count here.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES, Rig, wait_until

pytestmark = pytest.mark.faults

STREAM_S = 100.0
SPLIT = ("--split-traces", "0.2", "--split-delay", "0.5")
TIMEOUT = 240.0


def split_traces(rig: Rig) -> int:
    """Traces with spans in more than one worker's store."""
    stores: dict[str, set[int]] = defaultdict(set)
    for i, worker in enumerate(rig.workers):
        for (trace_id,) in rig.store_rows(worker, "SELECT DISTINCT TraceId FROM otel_traces"):
            stores[str(trace_id)].add(i)
    return sum(1 for found in stores.values() if len(found) > 1)


def test_scaling_up_and_down_loses_duplicates_and_splits_nothing(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.start()
    rig.wait_balanced(TIMEOUT)
    rate = TRACES / STREAM_S
    stream = ("--rate", f"{rate:g}", "--duration", f"{STREAM_S:g}", "--diurnal-amplitude", "0")
    steps = []
    with rig.generating("stream", TRACES + 1000, *stream, *SPLIT, start=None):
        began = time.monotonic()
        for share in (0.25, 0.5, 0.75):
            at = STREAM_S * share

            def reached(at: float = at) -> bool:
                return time.monotonic() - began >= at

            wait_until(reached, at + 5, f"{share:.0%} of the stream")
            if share < 0.75:
                rig.start(rig.add_worker())
                code = None
            else:
                code = rig.stop(rig.workers[1])
            balanced_s = rig.wait_balanced(TIMEOUT)
            steps.append(
                {"at_s": at, "workers": len(rig.up()), "rebalance_s": round(balanced_s, 1)}
            )
    leaving_exit = code

    acc = rig.finish(
        "scale-1-2-3-2",
        steps=steps,
        split_traces=split_traces(rig),
        dup_rows_within_stores=rig.dup_rows_within_stores(),
        notes=f"workers join at 25% and 50% of a {STREAM_S:.0f}s stream, one leaves "
        "(SIGTERM) at 75%",
    )

    assert leaving_exit == 0, f"the leaving worker exited with {leaving_exit}"
    assert acc.lost == 0, f"{acc.lost} spans lost"
    assert acc.unexpected == 0
    assert acc.dup_rows == 0, f"{acc.dup_rows} rows stored twice"
    assert acc.extra["split_traces"] == 0
    assert acc.windows_equal, f"windows differ: {acc.extra.get('windows_by_start')}"
