"""Scenario 13: a backlog read under CPU load closes the windows a live run closes (issue #14).

Issue #14 replayed real traces as a backlog on a busy 2-core machine and the window
stage closed windows before their spans arrived (5.8-34% of spans ``LateSpans``).
Here one generated stream is written to two rigs' input topics (6 partitions each):

- ``backlog``: the whole stream is in Kafka before its worker starts, read as fast
  as the worker can;
- ``live``: the same records (same partition, key and bytes) sent by a paced
  producer, each when its trace ends, event time running :data:`SPEEDUP` times
  the wall clock, while its worker runs;

and both workers run while busy-loop processes (one per core) compete for the CPU.
Both must close exactly the windows the stream holds (the reference computed from
the generator's manifest), the same Requests per (service, operation, window) in
both runs, and no span may be late in either.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from pipeline.generate.manifest import Manifest
from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES, Rig

pytestmark = pytest.mark.faults

#: Traces of the stream (``--rate 50``: 50 per second of event time, ~20 spans each).
STREAM_TRACES = max(2000, TRACES // 2)
#: Event seconds per wall second of the live run.
SPEEDUP = 2.0
#: Busy-loop processes competing with the workers: one per core, at least two.
LOADERS = max(2, os.cpu_count() or 2)


@contextmanager
def cpu_load(processes: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``processes`` busy loops at the workers' priority for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(30)


def trace_ends(manifest: Manifest) -> dict[tuple[int, int], int]:
    """(partition, offset) of each record -> the end (ns) of the last span in it."""
    return {
        (m["partition"], m["offset"]): max(
            s.start_ns + s.duration_ns for t in m["trace_ids"] for s in manifest.traces[t]
        )
        for m in manifest.messages
    }


def send_live(rig: Rig, records: list[Any], ends: dict[tuple[int, int], int]) -> None:
    """Copy ``records`` to the rig's input topic, each when its trace ends (paced).

    Each keeps its partition, key and bytes; the wait between sends paces the input
    like live traffic (it synchronises nothing).
    """
    due = {id(r): ends[(int(r.partition()), int(r.offset()))] for r in records}
    ordered = sorted(records, key=lambda r: (due[id(r)], r.partition(), r.offset()))
    first_ns, began = due[id(ordered[0])], time.monotonic()
    producer = rig.producer()
    for record in ordered:
        at = began + (due[id(record)] - first_ns) / 1e9 / SPEEDUP
        while (wait := at - time.monotonic()) > 0:
            producer.poll(min(wait, 0.5))
        producer.produce(
            rig.topics.input,
            key=record.key(),
            value=record.value(),
            partition=record.partition(),
            headers=record.headers(),
        )
        producer.poll(0)
    assert producer.flush(60) == 0, "live records not delivered"


def test_a_backlog_read_under_cpu_load_closes_the_windows_of_a_live_run(
    make_rig: MakeRig,
) -> None:
    backlog, live = make_rig(), make_rig()
    manifest = backlog.generate("stream", STREAM_TRACES)
    live.manifests.append(manifest)
    records = backlog.read_topic(backlog.topics.input)
    assert len(records) == len(manifest.messages)
    with cpu_load(LOADERS):
        backlog.start()
        live.start()
        send_live(live, records, trace_ends(manifest))
        results = {
            name: rig.finish(f"backlog-pace-{name}", loaders=LOADERS, speedup=SPEEDUP)
            for name, rig in (("backlog", backlog), ("live", live))
        }
    windows = {name: rig.windows() for name, rig in (("backlog", backlog), ("live", live))}
    for name, acc in results.items():
        assert acc.lost == 0, f"{name}: {acc.lost} spans lost"
        assert acc.windows_equal, f"{name}: windows differ: {acc.extra.get('windows_by_start')}"
    late = {name: sum(lt for _, lt in w.values()) for name, w in windows.items()}
    assert late == {"backlog": 0, "live": 0}
    requests = {name: {k: r for k, (r, _) in w.items() if r} for name, w in windows.items()}
    assert requests["backlog"] == requests["live"]
