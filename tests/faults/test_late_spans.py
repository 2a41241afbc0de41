"""Scenario 10: late and clock-skewed spans are counted as late, never silently dropped.

Policy (``pipeline/windows/assembler.py``): a window closes once
``window_end + allowed_lateness <= watermark``; a partial for a closed window is
LATE and its span count goes to ``LateSpans`` of the series' next closed
window. So over the whole run every span must show up in ``spanstream_red_metrics``
either as a Request of its window or as a LateSpan, and every span must still
be stored in ``otel_traces`` (lateness is about windows, not about storage).

Streams, in this order, timed against the wall clock (the worker caps how far
a span ahead of *its* clock can move the watermark, so skew is only meaningful
relative to it): ``main`` (a backlog ending two minutes ago, read as fast as
possible); ``past`` (timestamps 5 minutes before it, after its windows
closed: late); ``future`` (:data:`FUTURE_S` ahead of the wall clock, a producer
with a skewed clock: its spans wait in their own windows, which close once the
wall clock gets there, and must not move the watermark); ``after`` (the main
stream's continuation). The test then waits for the future windows to close
and checks that every span was counted, as a request or as late.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES, wait_until

pytestmark = pytest.mark.faults

MAIN = max(500, TRACES // 4)
SKEWED = max(100, TRACES // 25)
MAIN_S = MAIN // 50  # --rate 50
#: How far ahead of the wall clock the skewed producer runs.
FUTURE_S = 90


def test_late_and_skewed_spans_are_counted_late_not_dropped(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.start()
    start = int(time.time()) - MAIN_S - 120
    rig.generate("main", MAIN, start=str(start))
    rig.drain()
    rig.wait_windows()
    in_time = rig.windows()
    streams = {
        "past": start - 300,
        "future": int(time.time()) + FUTURE_S,
        "after": start + MAIN_S + 5,
    }
    for seed, (name, begin) in enumerate(streams.items(), start=2):
        rig.generate(name, SKEWED, "--seed", str(seed), start=str(begin))
        rig.drain()
    rig.faults = 3 * SKEWED
    total = len(rig.spans())

    def all_counted() -> bool:
        return sum(r + lt for r, lt in rig.windows().values()) >= total

    wait_until(all_counted, FUTURE_S + 300, "the future-skewed windows to close")

    acc = rig.finish(
        "late-and-skewed",
        main_requests=sum(r for r, _ in in_time.values()),
        main_late=sum(lt for _, lt in in_time.values()),
        skewed_traces=SKEWED,
        notes=f"{MAIN} traces, then {SKEWED} each at -5 min, +{FUTURE_S}s of the wall clock "
        "and right after",
    )

    assert acc.lost == 0 and acc.dup_rows == 0, "late spans must still be stored"
    after = rig.windows()
    # On-time data stays correct: the main stream's windows keep their request counts.
    assert {k: after[k][0] for k in in_time} == {k: r for k, (r, _) in in_time.items()}
    assert acc.window_requests + acc.window_late == acc.window_reference, (
        f"{acc.window_reference - acc.window_requests - acc.window_late} spans neither "
        "counted in a window nor as late"
    )
    future = streams["future"] * 1000
    skewed = {k: v for k, v in after.items() if k[2] >= future - 10_000}
    assert sum(r for r, _ in skewed.values()) > 0, "the skewed spans were not counted in time"
