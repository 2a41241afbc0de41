"""The replay shell's local parts: options, finding and extracting the data set, fault mapping."""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipeline.errors import ConfigError
from pipeline.evaluate import nezha, nezha_replay
from pipeline.evaluate.nezha_incidents import IncidentState
from pipeline.evaluate.nezha_replay import (
    ReplayOptions,
    find_dataset,
    load,
    scored_faults,
    timer_env,
    topic_state,
)
from pipeline.evaluate.nezha_score import AlertState

T0_S = 1_661_140_000  # 2022-08-22 03:46:40 UTC
FAULT = {
    "inject_time": "2022-08-22 03:47:00",
    "inject_timestamp": "0",
    "inject_pod": "cartservice-579f59597d-wc2lz",
    "inject_type": "return",
}


def write_dataset(root: Path) -> Path:
    (root / "trace").mkdir(parents=True)
    start = T0_S * 10**9
    row = f"{'a' * 32},{'1' * 16},root,frontend-579b9bff58-t2dbm,op,{start},{start + 10**9},1\n"
    (root / "trace" / "03_47_trace.csv").write_text(nezha.HEADER + row)
    (root / "fault_list.json").write_text(json.dumps({"03": [FAULT]}))
    return root


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"pace": "fast"}, "--pace"),
        ({"speedup": 0.0}, "--speedup"),
        ({"window_seconds": 0}, "--window-seconds"),
        ({"span_kinds": "guessed"}, "--span-kinds"),
    ],
)
def test_options_refuse_bad_values(changes: dict[str, object], option: str) -> None:
    options = ReplayOptions(Path("x"), **changes)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=option):
        options.check()


def test_find_dataset_in_a_directory(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "nested" / "nezha")
    assert find_dataset(tmp_path, tmp_path / "scratch") == root


def test_find_dataset_extracts_a_tar_archive(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "src" / "nezha-x")
    archive = tmp_path / "nezha.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(root, arcname="nezha-x")
    found = find_dataset(archive, tmp_path / "scratch")
    assert found == tmp_path / "scratch" / "nezha-x"
    clips, faults = load(found)
    assert [len(c.spans) for c in clips] == [1]
    assert [f.service for f in faults] == ["cartservice"]


def test_find_dataset_without_fault_list(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no fault_list\.json"):
        find_dataset(tmp_path, tmp_path / "scratch")


def test_load_without_clips(tmp_path: Path) -> None:
    (tmp_path / "trace").mkdir()
    (tmp_path / "fault_list.json").write_text("{}")
    with pytest.raises(ConfigError, match="no readable"):
        load(tmp_path)


def test_scored_faults_are_on_the_replay_timeline(tmp_path: Path) -> None:
    clips, faults = load(write_dataset(tmp_path))
    (f,) = scored_faults(nezha.place(clips), faults)
    # 03:47:00 lies after the only clip (03:46:40-03:46:41): mapped through its shift (0).
    assert (f.label, f.service, f.kind, f.inject_ns) == (
        "03:47:00",
        "cartservice",
        "return",
        (T0_S + 20) * 10**9,
    )


ALERT = {
    "alert_id": "a" * 16,
    "service": "cartservice",
    "status": "firing",
    "window_start": "2022-08-22T03:48:00Z",
    "onset_window_start": "2022-08-22T03:47:00Z",
}
INCIDENT = {
    "kind": "incident",
    "incident_id": "b" * 16,
    "version": 2,
    "status": "updated",
    "opened_at": "2022-08-22T03:47:00Z",
    "updated_at": "2022-08-22T03:49:00Z",
    "services": ["cartservice", "frontend"],
    "alert_ids": ["a" * 16],
    "root_causes": [{"service": "cartservice", "operation": "op", "score": 1.0, "evidence": ""}],
}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (ALERT, AlertState("a" * 16, "cartservice", "firing", 1_661_140_080 * 10**9,
                           1_661_140_020 * 10**9)),
        (INCIDENT, IncidentState("b" * 16, 2, "updated", 1_661_140_020 * 10**9,
                                 ("cartservice", "frontend"), ("a" * 16,), ("cartservice",),
                                 1_661_140_140 * 10**9)),
    ],
)  # fmt: skip
def test_topic_state_reads_alerts_and_incident_records(
    message: dict[str, object], expected: object
) -> None:
    assert topic_state(message) == expected


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (ReplayOptions(Path("x")), {}),
        (ReplayOptions(Path("x"), pace="backlog", scale_timers=True), {}),
        (
            ReplayOptions(Path("x"), speedup=20.0, scale_timers=True),
            {"SPANSTREAM_DECISION_WAIT_SECONDS": "0.25", "SPANSTREAM_GRAPH_FLUSH_SECONDS": "0.5"},
        ),
    ],
)
def test_timer_env_scales_wall_timers_in_live_pace(
    options: ReplayOptions, expected: dict[str, str]
) -> None:
    assert timer_env(options) == expected


class FakeWorker:
    """What ``_judged`` asks a worker: the windows table's rows and the closed counter."""

    def __init__(self, rows: int, closed: float) -> None:
        self.rows, self.closed = rows, closed

    def query(self, sql: str) -> list[list[int]]:
        assert "spanstream_red_metrics FINAL" in sql
        return [[self.rows]]

    def metric(self, name: str) -> float:
        assert name == "spanstream_windows_closed_total"
        return self.closed


@pytest.mark.parametrize(("rows", "closed", "judged"), [(10, 10, True), (10, 7, False)])
def test_alerts_are_read_only_once_every_written_window_was_judged(
    rows: int, closed: float, judged: bool
) -> None:
    """Windows are written before their close judges them: reading the alerts in between
    missed the last close's (a backlog closes most windows in its last closes)."""
    assert nezha_replay._judged(FakeWorker(rows, closed)) is judged  # type: ignore[arg-type]


class RecordingSink:
    def __init__(self) -> None:
        self.keys: list[bytes] = []

    def send(self, key: bytes, value: bytes, headers: object, on_delivery: object) -> None:
        self.keys.append(key)

    def poll(self, timeout: float) -> None:
        return None

    def flush(self) -> None:
        return None


def test_produce_sends_every_message_and_logs_progress(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(nezha_replay, "PROGRESS_S", 0.0)  # a progress line per message
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="op")
    plan = [nezha.ReplayMessage(i * 60 * 10**9, b"k%d" % i, request) for i in range(3)]
    sink = RecordingSink()
    with caplog.at_level(logging.INFO, logger=nezha_replay.__name__):
        sent = nezha_replay.produce(sink, plan, 1.0, live=False)  # type: ignore[arg-type]
    assert sent == (3, 3) and sink.keys == [b"k0", b"k1", b"k2"]
    assert "event minute 2.0" in caplog.text
