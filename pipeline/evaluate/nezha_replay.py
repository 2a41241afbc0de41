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
from pipeline.evaluate import nezha, nezha_kinds
from pipeline.evaluate.nezha_incidents import IncidentReport, IncidentState, score_incidents
from pipeline.evaluate.nezha_offline import meta_line, window_line
from pipeline.evaluate.nezha_score import (
    AlertState,
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
#: Seconds between two progress lines of a replay.
PROGRESS_S = 30.0
PACES = ("live", "backlog")
SPAN_KINDS = ("none", "reconstructed")
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
    #: ``reconstructed``: send the kinds :mod:`pipeline.evaluate.nezha_kinds` infers.
    span_kinds: str = "none"
    #: Divide the worker's wall-clock timers by ``speedup`` (live pace): see :func:`timer_env`.
    scale_timers: bool = False

    def check(self) -> None:
        if self.pace not in PACES:
            raise ConfigError(f"--pace {self.pace!r}: one of {', '.join(PACES)}")
        if self.span_kinds not in SPAN_KINDS:
            raise ConfigError(f"--span-kinds {self.span_kinds!r}: one of {', '.join(SPAN_KINDS)}")
        if not self.speedup > 0:
            raise ConfigError(f"--speedup {self.speedup}: must be > 0")
        if self.window_seconds < 1 or self.fault_seconds < 0:
            raise ConfigError("--window-seconds must be >= 1 and --fault-seconds >= 0")


#: The worker's wall-clock timers (setting, its default in seconds) that event time outruns.
WALL_TIMERS = (("SPANSTREAM_DECISION_WAIT_SECONDS", 5.0), ("SPANSTREAM_GRAPH_FLUSH_SECONDS", 10.0))


def timer_env(options: ReplayOptions) -> dict[str, str]:
    """The worker's wall-clock timers divided by the speedup, with ``scale_timers`` in live pace.

    Windows close in event time, but tail sampling decides a trace (and the service
    graph reads it) ``decision wait`` wall seconds after its last span, and graph
    increments reach the incident step every ``graph flush`` wall seconds. At 10x
    those 15 s are 150 s of event time: a window has closed long before its graph
    increments arrive, where in real time they come before its close (30 s after its
    end). Scaled, the two keep their real-time order.

    >>> timer_env(ReplayOptions(Path("x"), speedup=10.0, scale_timers=True))
    {'SPANSTREAM_DECISION_WAIT_SECONDS': '0.5', 'SPANSTREAM_GRAPH_FLUSH_SECONDS': '1'}
    >>> timer_env(ReplayOptions(Path("x"), speedup=10.0))
    {}
    """
    if not options.scale_timers or options.pace != "live":
        return {}
    return {name: f"{default / options.speedup:g}" for name, default in WALL_TIMERS}


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
    incidents: IncidentReport | None = None
    kinds: int = 0  # spans sent with a reconstructed kind
    edges: int = 0  # distinct service-graph edges the worker wrote
    edge_calls: int = 0  # calls over them


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
    """Send the plan (paced in ``live`` mode); returns (messages, spans). Logs progress
    every :data:`PROGRESS_S` seconds."""
    first_ns: int | None = None
    began = time.monotonic()
    next_log = began + PROGRESS_S
    sent = spans = 0
    for msg in plan:
        if first_ns is None:
            first_ns = msg.send_ns
        if time.monotonic() >= next_log:
            next_log += PROGRESS_S
            log.info("replay: sent %d records, %d spans, event minute %.1f",
                     sent, spans, (msg.send_ns - first_ns) / NS_PER_S / 60)  # fmt: skip
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


@dataclass(frozen=True)
class TopicStates:
    """Every alert and incident record version read from the alert topic."""

    alerts: list[AlertState]
    incidents: list[IncidentState]
    unreadable: int = 0


def topic_state(message: dict[str, Any]) -> AlertState | IncidentState:
    """An alert or incident record (as ``read_alert`` returns it) as scoring reads it."""
    if message.get("kind") == "incident":
        return IncidentState(
            str(message["incident_id"]),
            int(message["version"]),
            str(message["status"]),
            _ns(message["opened_at"]),
            tuple(str(v) for v in message["services"]),
            tuple(str(v) for v in message["alert_ids"]),
            tuple(str(c["service"]) for c in message["root_causes"]),
            _ns(message["updated_at"]),
        )
    return AlertState(
        str(message["alert_id"]),
        str(message["service"]),
        str(message["status"]),
        _ns(message["window_start"]),
        _ns(message["onset_window_start"]),
    )


def read_topic(bootstrap: str, topic: str, security: Any = None) -> TopicStates:
    """Every alert and incident record version, from the alert topic's start to its end.

    Alerts not from ``spanstream_anomalies``: once ClickHouse merges that table
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
    out = TopicStates([], [])
    unreadable = 0
    try:
        meta = consumer.list_topics(topic, timeout=30.0).topics[topic]
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        consumer.assign(parts)
        open_parts = {p.partition for p in parts}
        deadline = time.monotonic() + 120.0
        while open_parts and time.monotonic() < deadline:
            record = consumer.poll(1.0)
            if record is None:
                continue
            if record.error() is not None:
                open_parts.discard(record.partition())  # end of partition (or its error)
                continue
            message = read_alert(record.value())
            try:
                state = topic_state(message) if message is not None else None
            except (KeyError, TypeError, ValueError):
                state = None
            if state is None:
                unreadable += 1
            elif isinstance(state, IncidentState):
                out.incidents.append(state)
            else:
                out.alerts.append(state)
    finally:
        consumer.close()
    return TopicStates(out.alerts, out.incidents, unreadable)


def _graph(worker: LocalWorker) -> tuple[int, int]:
    """Distinct edges and calls over them in ``spanstream_service_graph``."""
    rows = worker.query(
        "SELECT uniqExact(Client, Server, ConnectionType), sum(Calls) FROM spanstream_service_graph"
    )
    edges, calls = (int(v or 0) for v in rows[0])
    return edges, calls


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
    env = {
        **unique_names("nezha"),
        "SPANSTREAM_WINDOW_SECONDS": str(options.window_seconds),
        **timer_env(options),
    }
    prepare_topics(bootstrap, env)
    began = time.monotonic()
    store = f"chdb:{work / 'worker' / 'chdb'}"
    try:
        with LocalWorker(work / "worker", bootstrap=bootstrap, store_url=store, env=env) as worker:
            security = load_settings({**env, "SPANSTREAM_KAFKA": bootstrap}).kafka_security
            sink = KafkaSink(bootstrap, env["SPANSTREAM_INPUT_TOPIC"], security=security)
            kinds = nezha_kinds.Kinds()
            if options.span_kinds == "reconstructed":
                kinds = nezha_kinds.reconstruct(s for p in placed for s in p.clip.spans)
            plan = nezha.messages(placed, kinds)
            log.info("replay: %d clips, %.1f event minutes, %s at x%g", len(placed),
                     (t1 - t0) / NS_PER_S / 60, options.pace, options.speedup)  # fmt: skip
            sent, spans = produce(sink, plan, options.speedup, options.pace == "live")
            deadline = time.monotonic() + options.close_timeout_s
            log.info("replay: %d records sent; waiting for the last windows to close", sent)
            requests, late, closed = _closed(worker, last_start_ms)
            while not (closed and _judged(worker)) and time.monotonic() < deadline:
                time.sleep(2.0)  # polling a condition under a deadline
                requests, late, closed = _closed(worker, last_start_ms)
            if options.dump_windows is not None:
                dump_windows(worker, options.dump_windows, placed, faults, options.window_seconds)
            edges, edge_calls = _graph(worker)
        states = read_topic(bootstrap, env["SPANSTREAM_ALERT_TOPIC"], security)
    finally:
        delete_topics(bootstrap, env)
    if states.unreadable:
        log.warning("alert topic: %d records neither alert nor incident", states.unreadable)
    scored = scored_faults(placed, faults)
    fault_ns = options.fault_seconds * NS_PER_S
    alerts = episode_windows(states.alerts, window_ns)
    report = score(scored, alerts, t0, t1, window_ns=window_ns, fault_ns=fault_ns)
    incidents = score_incidents(
        scored, states.alerts, states.incidents, t0, t1, window_ns=window_ns, fault_ns=fault_ns
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
        incidents,
        len(kinds),
        edges,
        edge_calls,
    )
