"""Scenario 12: a flood of distinct service names among valid traffic.

A wall-clock-paced valid stream (the generator's seven services) runs for
:data:`STREAM_S`; once the worker has seen all seven, :data:`FLOOD` records, each
one span of a never-seen service name, arrive within :data:`FLOOD_S` (a
misconfigured SDK putting a pod or request id into ``service.name``). The worker
runs with the default ``SPANSTREAM_MAX_SERVICES`` (1000), so all but the first few
hundred flood names aggregate under ``__overflow__``.

What must hold: no valid span lost and every flood span stored too (under its own
name); the valid series' windows equal the reference and the flood's windows (the
overflow series plus the flood names that took free slots) count every flood span,
as ``spanstream_overflow_spans_total`` does; windows keep closing on time (window
lag bounded throughout); ``/metrics`` stays small; the lag drains back after the
flood (the recovery time).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
import uuid
from typing import Any

import pytest

from pipeline.generate.topology import SERVICES
from pipeline.local.worker import LocalWorker
from pipeline.otlp.samples import proto_request, proto_span
from pipeline.settings import load_settings
from tests.faults import kafka_reads
from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES, WINDOW_S, Rig, wait_until

pytestmark = pytest.mark.faults

STREAM_S = 100.0
#: Distinct flood service names (``SPANSTREAM_FAULTS_FLOOD``): 10x the traces by default.
FLOOD = int(os.environ.get("SPANSTREAM_FAULTS_FLOOD", str(max(10_000, TRACES * 10))))
FLOOD_S = float(os.environ.get("SPANSTREAM_FAULTS_FLOOD_SECONDS", "30"))
FLOOD_OP = "GET /flood"
#: The worker's default SPANSTREAM_MAX_SERVICES.
MAX_SERVICES = 1000
#: A window closes lateness (5 s) after its end; cut and close timers add seconds.
WINDOW_LAG_BOUND_S = 60.0
#: /metrics lines one admitted service name may add, whatever it sends: its own
#: spanstream_* series (at most 8 without ``_created``), one spanmetrics label set (calls,
#: 17 buckets, sum, count: 20) and one service-graph edge from ``user`` (2 counters, 2
#: histograms of 17 buckets + sum + count: 40). Names past the cap add none.
LINES_PER_ADMITTED_NAME = 8 + 20 + 40
#: The flood names that fit under SPANSTREAM_MAX_SERVICES beside the valid services.
ADMITTED_FLOOD = MAX_SERVICES - len(SERVICES)
#: A flood service name as a label value (see :func:`flood`).
FLOOD_NAME = re.compile(r'"(pod-\d{6}-[0-9a-f]{6})"')
NS_PER_MS = 1_000_000


def scrape(worker: LocalWorker) -> tuple[str, float]:
    began = time.monotonic()
    url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=120) as response:
        text = response.read().decode()
    return text, time.monotonic() - began


def gauge(text: str, name: str) -> float:
    """Sum of a metric's samples in a scraped text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Sampler:
    """/metrics size, scrape time, window lag, consumer lag, RSS and the window stage's
    backlog (partials not committed by its group) over the run."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.rows: list[dict[str, float]] = []

    def sample(self, phase: str) -> dict[str, float]:
        self.rig.check_ingest_alive()
        text, seconds = scrape(self.rig.worker)
        row = {
            "phase": phase,  # type: ignore[dict-item]
            "lines": len(text.splitlines()),
            "scrape_s": round(seconds, 3),
            "window_lag_s": gauge(text, "spanstream_window_lag_seconds"),
            "consumer_lag": gauge(text, "spanstream_consumer_lag_messages"),
            "rss_mb": round(self.rig.worker.rss_bytes() / 2**20, 1),
            "partials_behind": self.partials_behind(),
        }
        self.rows.append(row)
        print("flood-sample", json.dumps(row), flush=True)  # the figures, even on a failure
        return row

    def partials_behind(self) -> float:
        """Partials the window stage has not committed yet (its consumer group's lag)."""
        topic = self.rig.topics.partials
        ends = kafka_reads.high_watermarks(self.rig.bootstrap, topic)
        group = load_settings({**self.rig.env}).windows_app_id
        done = kafka_reads.committed(self.rig.bootstrap, group, topic)
        return float(sum(end - max(done.get(p, (0, ""))[0], 0) for p, end in ends.items()))

    def worst(self, key: str) -> float:
        return max((r[key] for r in self.rows), default=0.0)


def flood(rig: Rig, sampler: Sampler) -> tuple[set[tuple[str, str]], dict[Any, int]]:
    """Produce the flood, paced over FLOOD_S; returns its span keys and reference windows."""
    producer = rig.producer()
    sent: set[tuple[str, str]] = set()
    windows: dict[tuple[str, str, int], int] = {}
    width = WINDOW_S * 1_000_000_000
    began = time.monotonic()
    next_sample = began
    for n in range(FLOOD):
        trace, span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        start = time.time_ns()
        value = proto_request(
            [
                proto_span(
                    trace_id=bytes.fromhex(trace),
                    span_id=bytes.fromhex(span),
                    name=FLOOD_OP,
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + 2_000_000,
                )
            ],
            resource={"service.name": f"pod-{n:06d}-{span[:6]}"},
        ).SerializeToString()
        producer.produce(rig.topics.input, value=value)
        producer.poll(0)
        sent.add((trace, span))
        key = ("__overflow__", FLOOD_OP, (start - start % width) // NS_PER_MS)
        windows[key] = windows.get(key, 0) + 1
        ahead = began + FLOOD_S * (n + 1) / FLOOD - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)  # pacing the flood, not synchronising
        if time.monotonic() >= next_sample:
            sampler.sample("flood")
            next_sample = time.monotonic() + 1.0
    assert producer.flush(60) == 0
    return sent, windows


def test_a_flood_of_service_names_is_capped_and_valid_windows_keep_closing(
    make_rig: MakeRig,
) -> None:
    rig = make_rig()
    rig.start()
    pid = rig.worker.pid
    sampler = Sampler(rig)
    rate = TRACES / STREAM_S
    stream = ("--rate", f"{rate:g}", "--duration", f"{STREAM_S:g}", "--diurnal-amplitude", "0")
    with rig.generating("stream", TRACES + 1000, *stream, start=None) as gen:

        def every_service_seen() -> bool:
            rig.check_ingest_alive()
            try:
                seen = rig.worker.metric_samples("spanstream_spans_in_total")
            except OSError:
                return False
            return all(f'service="{name}"' in "".join(seen) for name in SERVICES)

        # Valid services already running are admitted before the flood fills the cap.
        wait_until(every_service_seen, 120, "every valid service decoded")
        sampler.sample("before")
        flood_sent, flood_windows = flood(rig, sampler)

        def recovered() -> bool:
            row = sampler.sample("after")
            # The lag gauge reads 0 until a first window closes: that is not on time.
            return row["consumer_lag"] <= max(50, rate * 5) and (
                0 < row["window_lag_s"] <= WINDOW_LAG_BOUND_S
            )

        recovery_s = wait_until(recovered, 600, "lag back after the flood", poll_s=1.0)
        while gen.poll() is None:
            sampler.sample("stream")
            time.sleep(1.0)  # sampling until the generator ends
    text, _ = scrape(rig.worker)
    overflowed = gauge(text, 'spanstream_overflow_spans_total{kind="service"}')
    acc = rig.finish(
        "cardinality-flood",
        also_sent=flood_sent,
        also_reference=flood_windows,
        recovery_s=round(recovery_s, 1),
        # Which flood names took the free slots depends on partition interleaving.
        fold_service=lambda s: s if s in SERVICES else "__overflow__",
        flood_services=FLOOD,
        overflow_spans=overflowed,
        services_admitted=gauge(text, "spanstream_services_admitted"),
        max_metrics_lines=sampler.worst("lines"),
        max_scrape_s=sampler.worst("scrape_s"),
        max_window_lag_s=sampler.worst("window_lag_s"),
        max_consumer_lag=sampler.worst("consumer_lag"),
        max_partials_behind=sampler.worst("partials_behind"),
        notes=f"{FLOOD} distinct service names in {FLOOD_S:.0f}s among "
        f"{rate:g} traces/s; recovery = flood end -> lag back",
    )

    assert rig.worker.pid == pid and rig.worker.running, "the worker restarted or exited"
    assert acc.lost == 0, f"{acc.lost} spans lost"
    assert acc.dup_rows == 0 and acc.unexpected == 0
    assert acc.windows_equal, f"windows differ: {acc.extra.get('window_diagnosis')}"
    # Every flood name past the valid services and the first admitted ones overflowed.
    assert overflowed == FLOOD - (MAX_SERVICES - len(SERVICES))
    exposed = {m.group(1) for m in FLOOD_NAME.finditer(text)}
    assert len(exposed) == ADMITTED_FLOOD, "flood names past the cap reached /metrics"
    flood_lines = sum(1 for line in text.splitlines() if FLOOD_NAME.search(line))
    assert flood_lines <= ADMITTED_FLOOD * LINES_PER_ADMITTED_NAME
    assert sampler.worst("window_lag_s") <= WINDOW_LAG_BOUND_S
