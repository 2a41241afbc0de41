"""Scenario 9: a 10x traffic burst for 2 minutes over a steady, wall-clock-paced rate.

Three generator runs back to back (distinct seeds, so distinct traces):
steady for :data:`BEFORE_S`, ten times the rate for :data:`BURST_S`, steady
again for :data:`AFTER_S`. The worker's consumer-lag gauge (summed over its
partitions) and its RSS are sampled throughout. What must hold: no OOM or
restart, the lag after the burst drains back to the steady level, and every
span is stored once with windows equal to the reference.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES, Rig, wait_until

pytestmark = pytest.mark.faults

STEADY = max(5, TRACES // 200)  # traces/s: 10 at CI volume, 25 at the default volume
BEFORE_S, BURST_S, AFTER_S = 30.0, 120.0, 60.0
RSS_BOUND_MB = 1500
#: Lag at or below this (records) counts as drained: a few seconds of steady traffic.
DRAINED = STEADY * 10


def lag(rig: Rig) -> int:
    try:
        return int(rig.worker.metric("spanstream_consumer_lag_messages"))
    except OSError:
        return -1


def test_a_10x_burst_drains_without_oom_or_loss(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.start()
    samples: list[tuple[str, float, int]] = []
    began = time.monotonic()
    phases = [("steady", STEADY, BEFORE_S), ("burst", STEADY * 10, BURST_S)]
    phases.append(("after", STEADY, AFTER_S))
    burst_ended: float | None = None
    drained_at: float | None = None
    for seed, (name, rate, seconds) in enumerate(phases, start=11):
        stream = ("--rate", str(rate), "--duration", str(seconds), "--diurnal-amplitude", "0")
        with rig.generating(
            name, int(rate * seconds) + 1000, *stream, "--seed", str(seed), start=None
        ) as proc:

            def sample(phase: str = name) -> bool:
                rig.check_ingest_alive()
                samples.append((phase, time.monotonic() - began, lag(rig)))
                return proc.poll() is not None

            wait_until(sample, seconds + 120, f"the {name} phase", poll_s=1.0)
        if name == "burst":
            burst_ended = time.monotonic()
    for phase, t, value in samples:
        if phase == "after" and 0 <= value <= DRAINED and drained_at is None:
            drained_at = began + t
    assert burst_ended is not None
    peak_lag = max(v for _, _, v in samples)
    acc = rig.finish(
        "burst-10x-2min",
        steady_traces_per_s=STEADY,
        peak_lag=peak_lag,
        lag_at_burst_end=next((v for p, _, v in samples if p == "after"), None),
        lag_drain_s=None if drained_at is None else round(drained_at - burst_ended, 1),
        notes=f"{STEADY}/s for {BEFORE_S:.0f}s, {STEADY * 10}/s for {BURST_S:.0f}s, "
        f"{STEADY}/s for {AFTER_S:.0f}s",
    )

    assert rig.worker.starts == 1 and rig.worker.running, "the worker restarted or exited"
    assert drained_at is not None, f"lag never fell to {DRAINED} after the burst: {samples[-5:]}"
    assert acc.peak_rss_mb < RSS_BOUND_MB
    assert acc.lost == 0, f"{acc.lost} spans lost"
    assert acc.dup_rows == 0 and acc.unexpected == 0
    assert acc.windows_equal, f"windows differ: {acc.extra.get('windows_by_start')}"
