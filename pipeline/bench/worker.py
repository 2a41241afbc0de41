"""The pipeline side: one ``spanstream worker`` watched via /metrics, /proc and its commits."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.bench.options import BenchFailed, BenchNames, BenchOptions, Progress, log
from pipeline.bench.report import (
    SAMPLE_INTERVAL_S,
    SCRAPE_INTERVAL_S,
    Filled,
    PipelineRun,
    Sample,
    mb,
    parse_metrics,
    steady_rate,
)


def _read_status(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all threads) from ``/proc/<pid>/stat``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _scrape(port: int) -> dict[str, float] | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return parse_metrics(response.read().decode())
    except OSError:
        return None


class _Committed:
    """The group's committed offsets of the input topic, via confluent-kafka."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: Sequence[int]) -> None:
        from confluent_kafka import Consumer, TopicPartition

        from pipeline.bench.kafka import security
        from pipeline.kafka_client import librdkafka_config

        connect = librdkafka_config(bootstrap, security())
        self._consumer = Consumer({**connect, "group.id": group, "enable.auto.commit": False})
        self._tps = [TopicPartition(topic, p) for p in partitions]

    def offsets(self) -> dict[int, int]:
        return {tp.partition: tp.offset for tp in self._consumer.committed(self._tps, timeout=10)}

    def close(self) -> None:
        self._consumer.close()


def _worker_env(names: BenchNames, options: BenchOptions) -> dict[str, str]:
    env = names.env()
    if options.max_buffered_traces is not None:
        env["SPANSTREAM_MAX_BUFFERED_TRACES"] = str(options.max_buffered_traces)
    return env


def measure_pipeline(
    bootstrap: str, names: BenchNames, filled: Filled, workdir: Path, options: BenchOptions
) -> PipelineRun:
    """Run one worker over the filled topic; see :mod:`pipeline.bench` for what is measured."""
    from pipeline.local.worker import LocalWorker

    worker = LocalWorker(
        workdir / "worker",
        bootstrap=bootstrap,
        store_url=f"chdb:{workdir / 'chdb'}",
        env=_worker_env(names, options),
    )
    started: list[BaseException | None] = []

    def start() -> None:
        try:
            worker.start(ready_timeout=min(options.timeout_s, 120.0))
            started.append(None)
        except BaseException as exc:
            started.append(exc)

    starter = threading.Thread(target=start, name="bench-worker-start", daemon=True)
    log.info("starting a worker (log: %s)", worker.log_file)
    starter.start()
    try:
        return _watch(worker, starter, started, bootstrap, names, filled, options)
    finally:
        starter.join(30)
        code = worker.stop()
        if code not in (0, -15):
            log.warning("worker exited with %s; log: %s", code, worker.log_file)


def _watch(
    worker: Any,
    starter: threading.Thread,
    started: list[BaseException | None],
    bootstrap: str,
    names: BenchNames,
    filled: Filled,
    options: BenchOptions,
) -> PipelineRun:
    total, spans_total = filled.messages, filled.spans
    samples: list[Sample] = []
    deadline = time.monotonic() + options.timeout_s
    progress = Progress(options.progress_s)
    last: dict[str, float] = {}
    rss_start = rss_peak = rss_samples = 0
    next_scrape = 0.0
    consumed_at: float | None = None
    committed = _Committed(bootstrap, names.group, names.input, sorted(filled.end_offsets))
    drain_done: float | None = None
    next_commit_check = 0.0
    next_tick = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                raise BenchFailed(
                    f"pipeline: not done after {options.timeout_s:.0f}s (last counters {last}); "
                    f"worker log: {worker.log_file}"
                )
            if started and started[0] is not None:
                raise BenchFailed(f"worker did not start: {started[0]}")
            if worker.pid is not None and not worker.running:
                last_line = (worker.log_tail(1) or "no output").strip()
                raise BenchFailed(f"worker died: {last_line} (log: {worker.log_file})")
            pid = worker.pid
            if pid is not None:
                rss = _read_status(pid, "VmRSS")
                rss_peak = max(rss_peak, rss)
                rss_samples += 1
            values = None
            if pid is not None and now >= next_scrape:
                next_scrape = now + SCRAPE_INTERVAL_S
                values = _scrape(worker.metrics_port)
            if values is not None and pid is not None:
                last = values
                rss_start = rss_start or rss  # the first scrape: the worker is up
                sample = Sample(
                    time.monotonic(),
                    int(values["spanstream_messages_in_total"]),
                    int(values["spanstream_spans_in_total"]),
                    rss,
                    int(values["spanstream_unacked_messages"]),
                    _cpu_seconds(pid),
                )
                samples.append(sample)
                if consumed_at is None and sample.messages >= total:
                    consumed_at = sample.t
                    log.info("pipeline: all %d messages consumed; waiting for commits", total)
                progress.maybe(
                    f"pipeline: {sample.messages:,}/{total:,} messages, "
                    f"{sample.spans:,} spans, RSS {mb(sample.rss_bytes)}"
                )
            if consumed_at is not None and now >= next_commit_check:
                next_commit_check = now + 0.25
                if committed.offsets() == dict(filled.end_offsets):
                    drain_done = time.monotonic()
                    break
            next_tick = max(next_tick + SAMPLE_INTERVAL_S, time.monotonic())
            time.sleep(max(0.0, next_tick - time.monotonic()))
    finally:
        committed.close()
    assert consumed_at is not None and drain_done is not None and worker.pid is not None
    hwm = _read_status(worker.pid, "VmHWM")
    final = _scrape(worker.metrics_port) or last
    messages_in = int(final["spanstream_messages_in_total"])
    spans_in = int(final["spanstream_spans_in_total"])
    if messages_in != total or spans_in != spans_total:
        raise BenchFailed(
            f"worker counted {messages_in} messages / {spans_in} spans in, "
            f"{total} / {spans_total} were produced"
        )
    stored = worker.count("otel_traces")
    rate = steady_rate(samples, total)
    log.info("pipeline: %d spans stored", stored)
    return PipelineRun(
        rate=rate,
        messages_in=messages_in,
        spans_in=spans_in,
        drain_seconds=drain_done - consumed_at,
        stored_spans=stored,
        kept_spans=int(final["spanstream_spans_kept_total"]),
        decode_errors=int(final["spanstream_decode_errors_total"]),
        rss_start_bytes=rss_start,
        rss_sampled_peak_bytes=rss_peak,
        rss_hwm_bytes=hwm,
        peak_unacked_messages=max(s.unacked_messages for s in samples),
        samples=rss_samples,
    )
