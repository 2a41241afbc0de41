"""Scenario 12: a second worker joins while the first reads a backlog (issue #12).

The whole stream is produced before any worker starts. The first worker begins
reading it; the moment its window stage has partials to take in, a second
worker joins the group, and the rebalance lands while both stages' consumers
are deep in a backlog. That is when Faust skips records of a partials partition
(faust-streaming #216, #606): the window stage reads a skipped range back from
Kafka, and its commit must then move past it. Before the fix a skip right
after a partition's first record left that partition committed at offset 1 for
good (Faust's ack tracker waited for offsets it would never deliver): lag 1,509
after shutdown in the issue's run. So besides lost = dup = 0 and equal windows,
every partials partition must be committed to its end, both while the workers
run and after they stopped.
"""

from __future__ import annotations

import pytest

from pipeline.settings import load_settings
from tests.faults import kafka_reads
from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES, Rig, wait_until

pytestmark = pytest.mark.faults

TIMEOUT = 240.0
#: How long the partials commits may trail the partials topic's end once the stream is stored.
COMMIT_CATCH_UP_S = 60.0


def partials_lag(rig: Rig) -> dict[int, int]:
    """Per partials partition: end offset minus the window stage group's committed offset."""
    settings = load_settings({**rig.env, "SPANSTREAM_KAFKA": rig.bootstrap})
    group = settings.windows_app_id
    committed = kafka_reads.committed(rig.bootstrap, group, rig.topics.partials)
    ends = rig.high_watermarks(rig.topics.partials)
    return {p: end - max(committed[p][0], 0) for p, end in ends.items()}


def test_a_worker_joining_during_a_backlog_leaves_no_partials_partition_behind(
    make_rig: MakeRig,
) -> None:
    rig = make_rig()
    rig.generate("backlog", TRACES)
    rig.start()
    wait_until(
        lambda: sum(rig.high_watermarks(rig.topics.partials).values()) > 0,
        TIMEOUT,
        "the first worker's first partials",
    )
    joined = rig.start(rig.add_worker())
    before = rig.safe_count() or 0
    rebalance_s = rig.wait_balanced(TIMEOUT)
    rig.await_recovery(joined, before, len(rig.expected()), TIMEOUT)

    rig.drain()
    # The joining worker's series start their hold over (taken over, then the idle
    # close once the backlog ends): its windows close a minute after the first's.
    rig.wait_windows(timeout=2 * TIMEOUT, stall_s=90.0)
    lag: dict[int, int] = {}

    def caught_up() -> bool:
        lag.update(partials_lag(rig))
        return not any(lag.values())

    try:
        caught_up_s: float | None = wait_until(
            caught_up, COMMIT_CATCH_UP_S, "partials commits at the end"
        )
    except AssertionError:
        caught_up_s = None
    running_lag = dict(lag)
    acc = rig.finish(
        "backlog-join",
        rebalance_s=round(rebalance_s, 1),
        partials_lag_running=running_lag,
        partials_commit_caught_up_s=None if caught_up_s is None else round(caught_up_s, 1),
        dup_rows_within_stores=rig.dup_rows_within_stores(),
        notes="a second worker joins as the first starts on a whole-stream backlog",
    )
    for worker in rig.up():
        assert rig.stop(worker) == 0, worker.log_tail(30)
    stopped_lag = partials_lag(rig)
    print(f"\npartials lag after stop {stopped_lag}")

    assert acc.lost == 0, f"{acc.lost} spans lost"
    assert acc.unexpected == 0
    assert acc.extra["dup_rows_within_stores"] == 0
    assert acc.windows_equal, f"windows differ: {acc.extra.get('windows_by_start')}"
    assert caught_up_s is not None, f"partials commits stuck while running: lag {running_lag}"
    assert not any(stopped_lag.values()), f"partials commits stuck after stop: {stopped_lag}"
