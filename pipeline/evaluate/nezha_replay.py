"""Replay the Nezha clips through the real pipeline and score its alerts (the shell).

A local Kafka broker (unless one is given) and a real ``spanstream worker``
process on embedded chdb; the replay plan of :mod:`pipeline.evaluate.nezha` is
produced to the input topic, then the worker's ``spanstream_anomalies`` rows are
read back through its /query endpoint and scored by
:mod:`pipeline.evaluate.nezha_score`.

Pacing. ``live`` sends each trace when its last span ends, with event time
running ``speedup`` times faster than the wall clock, so the worker sees live
traffic. ``backlog`` sends everything at once, as a consumer catching up would
read it; the window stage then closes windows as the watermark races ahead, and
spans that arrive after their window closed are counted late (``LateSpans``,
printed with the settings) rather than in their window.
"""

from __future__ import annotations

import json
import logging
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.evaluate import nezha
from pipeline.evaluate.nezha_offline import meta_line, window_line
from pipeline.evaluate.nezha_score import (
    AlertState,
    AlertWindow,
    Report,
    ScoredFault,
    episode_windows,
    score,
)
from pipeline.generate.produce import KafkaSink
from pipeline.local.kafka import LocalKafka
from pipeline.local.worker import LocalWorker, delete_topics, prepare_topics, unique_names
from pipeline.settings import load_settings

log = logging.getLogger(__name__)
PACES = ("live", "backlog")
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
OFFSET_BEGINNING = -2  # librdkafka's logical offset


@dataclass(frozen=True)
class ReplayOptions:
    source: Path  # the .tar.xz, or a directory holding fault_list.json and trace/
    speedup: float = 10.0
    pace: str = "live"
    window_seconds: int = 60
    fault_seconds: int = 120
    workdir: Path | None = None
    #: Write the closed windows here (``nezha_offline`` format) for offline judging.
    dump_windows: Path | None = None
    #: Wall seconds to wait for the last windows to close once everything is sent.
    close_timeout_s: float = 300.0

    def check(self) -> None:
        if self.pace not in PACES:
            raise ConfigError(f"--pace {self.pace!r}: one of {', '.join(PACES)}")
        if not self.speedup > 0:
            raise ConfigError(f"--speedup {self.speedup}: must be > 0")
        if self.window_seconds < 1 or self.fault_seconds < 0:
            raise ConfigError("--window-seconds must be >= 1 and --fault-seconds >= 0")


@dataclass(frozen=True)
class ReplayResult:
    report: Report
    clips: int
    skipped_rows: int
    messages: int
    spans: int
    replay_s: float  # event time covered by the replay
    wall_s: float
    requests_counted: int  # spans the worker counted in closed windows
    late_spans: int
    windows_closed: bool


def find_dataset(source: Path, scratch: Path) -> Path:
    """The directory holding ``fault_list.json``; a tar archive is extracted into ``scratch``."""
    if source.is_file():
        with tarfile.open(source) as tar:
            tar.extractall(scratch, filter="data")
        source = scratch
    found = sorted(source.rglob("fault_list.json"))
    if not found:
        raise ConfigError(f"--nezha {source}: no fault_list.json in it")
    return found[0].parent


def load(dataset: Path) -> tuple[list[nezha.Clip], list[nezha.Fault]]:
    clips = [
        nezha.parse_clip(p.name.removesuffix("_trace.csv"), p.read_text(errors="replace"))
        for p in sorted((dataset / "trace").glob("*_trace.csv"))
    ]
    if not any(c.spans for c in clips):
        raise ConfigError(f"--nezha {dataset}: no readable trace/*_trace.csv clip")
    return clips, nezha.parse_faults((dataset / "fault_list.json").read_text())


def scored_faults(
    placed: Sequence[nezha.Placed], faults: Iterable[nezha.Fault]
) -> list[ScoredFault]:
    out = []
    for f in faults:
        mapped = nezha.map_time(placed, f.inject_ns)
        label = time.strftime("%H:%M:%S", time.gmtime(f.inject_ns // NS_PER_S))
        out.append(ScoredFault(label, f.service, f.kind, mapped.replay_ns, mapped.clamped_s))
    return out


def produce(
    sink: KafkaSink, plan: Iterable[nezha.ReplayMessage], speedup: float, live: bool
) -> tuple[int, int]:
    """Send the plan (paced in ``live`` mode); returns (messages, spans)."""
    first_ns: int | None = None
    began = time.monotonic()
    sent = spans = 0
    for msg in plan:
        if first_ns is None:
            first_ns = msg.send_ns
        if live:
            due = began + (msg.send_ns - first_ns) / NS_PER_S / speedup
            while (wait := due - time.monotonic()) > 0:
                sink.poll(min(wait, 0.5))  # pacing: serves delivery reports meanwhile
        sink.send(msg.key, msg.request.SerializeToString(), None, lambda _p, _o: None)
        sent += 1
        spans += sum(len(ss.spans) for rs in msg.request.resource_spans for ss in rs.scope_spans)
    sink.flush()
    return sent, spans


def _closed(worker: LocalWorker, last_start_ms: int) -> tuple[int, int, bool]:
    rows = worker.query(
        "SELECT sum(Requests), sum(LateSpans), max(toUnixTimestamp64Milli(WindowStart)) "
        "FROM spanstream_red_metrics"
    )
    requests, late, top = (int(v or 0) for v in rows[0])
    return requests, late, top >= last_start_ms


def _judged(worker: LocalWorker) -> bool:
    """Every window written has its alerts written too: the worker counts a window closed
    only once its close wrote everything (rows, anomalies, alert messages)."""
    rows = int(worker.query("SELECT count() FROM spanstream_red_metrics FINAL")[0][0])
    return worker.metric("spanstream_windows_closed_total") >= rows


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000) * NS_PER_MS


def read_alerts(
    bootstrap: str, topic: str, window_ns: int, security: Any = None
) -> list[AlertWindow]:
    """Every episode's windows, from the alert topic read from its start to its end.

    Not from ``spanstream_anomalies``: once ClickHouse merges that table
    (ReplacingMergeTree by alert id) only each episode's last version is left, so
    what it shows depends on when the merge ran.
    """
    from confluent_kafka import Consumer, TopicPartition

    from pipeline.commands.alerts import read_alert
    from pipeline.kafka_client import librdkafka_config

    consumer = Consumer(
        {
            **librdkafka_config(bootstrap, security),
            "group.id": f"nezha-score-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 2,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=30.0).topics[topic]
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        consumer.assign(parts)
        states, open_parts = [], {p.partition for p in parts}
        deadline = time.monotonic() + 120.0
        while open_parts and time.monotonic() < deadline:
            record = consumer.poll(1.0)
            if record is None:
                continue
            if record.error() is not None:
                open_parts.discard(record.partition())  # end of partition (or its error)
                continue
            message = read_alert(record.value())
            if message is not None:
                states.append(
                    AlertState(
                        str(message["alert_id"]),
                        str(message["service"]),
                        str(message["status"]),
                        _ns(message["window_start"]),
                        _ns(message["onset_window_start"]),
                    )
                )
    finally:
        consumer.close()
    return episode_windows(states, window_ns)


def dump_windows(
    worker: LocalWorker,
    path: Path,
    placed: Sequence[nezha.Placed],
    faults: Iterable[nezha.Fault],
    window_s: int,
) -> None:
    """The closed windows and the faults, as ``spanstream evaluate --windows`` reads them."""
    rows = worker.query(
        "SELECT ServiceName, SpanName, toUnixTimestamp64Milli(WindowStart) * 1000000, "
        "toUnixTimestamp64Milli(WindowEnd) * 1000000, Requests, Errors, 0, DurationP50Ms, "
        "DurationP95Ms, DurationP99Ms, DurationMaxMs, LateSpans FROM spanstream_red_metrics FINAL "
        "ORDER BY WindowEnd, ServiceName, SpanName"
    )
    meta = meta_line(placed[0].start_ns, placed[-1].end_ns, window_s, scored_faults(placed, faults))
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps(meta) + "\n")
        for row in rows:
            f.write(json.dumps(window_line(row)) + "\n")


def run(options: ReplayOptions, bootstrap: str | None = None) -> ReplayResult:
    """Replay and score; starts (and stops) a local broker unless ``bootstrap`` is given."""
    options.check()
    with tempfile.TemporaryDirectory(prefix="spanstream-nezha-") as tmp:
        work = options.workdir or Path(tmp)
        clips, faults = load(find_dataset(options.source, work / "data"))
        if bootstrap is not None:
            return _replay(options, clips, faults, bootstrap, work)
        with LocalKafka(work / "kafka") as kafka:
            return _replay(options, clips, faults, kafka.bootstrap, work)


def _replay(
    options: ReplayOptions,
    clips: list[nezha.Clip],
    faults: list[nezha.Fault],
    bootstrap: str,
    work: Path,
) -> ReplayResult:
    placed = nezha.place(clips)
    t0, t1 = placed[0].start_ns, placed[-1].end_ns
    window_ns = options.window_seconds * NS_PER_S
    last_start_ms = max(s.start_ns for s in placed[-1].clip.spans) + placed[-1].shift_ns
    last_start_ms = last_start_ms // window_ns * window_ns // NS_PER_MS
    env = {**unique_names("nezha"), "SPANSTREAM_WINDOW_SECONDS": str(options.window_seconds)}
    prepare_topics(bootstrap, env)
    began = time.monotonic()
    store = f"chdb:{work / 'worker' / 'chdb'}"
    try:
        with LocalWorker(work / "worker", bootstrap=bootstrap, store_url=store, env=env) as worker:
            security = load_settings({**env, "SPANSTREAM_KAFKA": bootstrap}).kafka_security
            sink = KafkaSink(bootstrap, env["SPANSTREAM_INPUT_TOPIC"], security=security)
            sent, spans = produce(
                sink, nezha.messages(placed), options.speedup, options.pace == "live"
            )
            deadline = time.monotonic() + options.close_timeout_s
            requests, late, closed = _closed(worker, last_start_ms)
            while not (closed and _judged(worker)) and time.monotonic() < deadline:
                time.sleep(2.0)  # polling a condition under a deadline
                requests, late, closed = _closed(worker, last_start_ms)
            if options.dump_windows is not None:
                dump_windows(worker, options.dump_windows, placed, faults, options.window_seconds)
        alerts = read_alerts(bootstrap, env["SPANSTREAM_ALERT_TOPIC"], window_ns, security)
    finally:
        delete_topics(bootstrap, env)
    report = score(
        scored_faults(placed, faults),
        alerts,
        t0,
        t1,
        window_ns=window_ns,
        fault_ns=options.fault_seconds * NS_PER_S,
    )
    return ReplayResult(
        report,
        len(placed),
        sum(c.skipped for c in clips),
        sent,
        spans,
        (t1 - t0) / NS_PER_S,
        time.monotonic() - began,
        requests,
        late,
        closed,
    )
