"""Scenario 5: SIGKILL right after a ClickHouse batch lands, before its offsets are committed.

No hook in the worker: the test polls ``otel_traces`` and kills the moment the
count rises (a batch just landed). Whether the kill hit the window is then
checked, not assumed: with the worker dead, the test reads the group's
committed offsets and opens the chdb directory itself; every stored trace whose
record offset is at or past its partition's committed position was written but
not committed, so the next worker replays it. The replay must not duplicate it.

The window only exists while some earlier record of the partition still waits
for a decision: with one trace per record, decided in arrival order, the commit
follows the insert within the same loop tick (a first run with no split traces
hit it 0 times in 3). So 30% of the traces are sent in two records 5 s of
stream time apart (about 1 s of processing in the backlog): a trace's first
record holds the commit back until its second part has arrived and been
decided, while the traces after it are already written.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from pipeline.store import open_store
from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES, wait_until

pytestmark = pytest.mark.faults

ROUNDS = 3
#: More rounds, up to this many, while no kill has hit the window yet.
MAX_ROUNDS = 6
START = 1_714_521_600  # the harness's START_TIME; each round's stream follows the last (50/s)
RECOVERY_TIMEOUT = 180.0


def test_kill_after_insert_before_commit_replays_without_duplicates(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.start()
    location: dict[str, tuple[int, int]] = {}
    rounds: list[dict[str, Any]] = []
    for n in range(MAX_ROUNDS):
        if n >= ROUNDS and any(r["written_uncommitted_traces"] for r in rounds):
            break
        # Fresh traces every round, so there is always a batch to land before the kill.
        count = max(TRACES // ROUNDS, 1000)
        manifest = rig.generate(
            f"stream{n}", count, "--split-traces", "0.3", "--split-delay", "5",
            "--seed", str(n + 1), start=str(START + n * (count // 50 + 20)),
        )  # fmt: skip
        # keyed by trace id: both records of a trace are on one partition
        for message in manifest.messages:
            for trace_id in message["trace_ids"]:
                p, o = message["partition"], message["offset"]
                location[trace_id] = (p, max(o, location.get(trace_id, (p, -1))[1]))
        total = len(rig.expected())
        base = rig.wait_progress(0, RECOVERY_TIMEOUT, "endpoint answers")

        def rose(base: int = base) -> bool:
            count = rig.safe_count()
            return count is not None and count > base

        wait_until(rose, RECOVERY_TIMEOUT, f"round {n}: a batch lands")
        rig.kill()
        killed_at = time.monotonic()
        committed = rig.committed()
        store = open_store(f"chdb:{rig.chdb_dir}")
        try:
            rows = store.query("SELECT TraceId, count() FROM otel_traces GROUP BY TraceId")
        finally:
            store.close()
        stored_spans = sum(int(c) for _, c in rows)
        uncommitted = [
            t for t, _ in rows if location[str(t)][1] >= committed[location[str(t)][0]][0]
        ]
        rounds.append(
            {
                "stored_spans_at_kill": stored_spans,
                "written_uncommitted_traces": len(uncommitted),
                "committed": {p: o for p, (o, _) in committed.items()},
                "marks": {p: m for p, (_, m) in committed.items()},
                "inspect_s": round(time.monotonic() - killed_at, 2),
            }
        )
        restart = rig.start()
        rig.await_recovery(restart, stored_spans, total, RECOVERY_TIMEOUT)

    hits = sum(1 for r in rounds if r["written_uncommitted_traces"] > 0)
    acc = rig.finish(
        "kill9-after-insert-before-commit",
        rounds=rounds,
        notes=f"{hits}/{len(rounds)} kills hit written-but-uncommitted records "
        f"({[r['written_uncommitted_traces'] for r in rounds]} traces)",
    )

    # A kill can land just after the commit that follows an insert (same loop tick): that
    # round then replays nothing. One round inside the window is what proves the replay.
    assert hits >= 1, rounds
    assert acc.dup_rows == 0, f"replay duplicated {acc.dup_rows} rows"
    assert acc.lost == 0 and acc.unexpected == 0
