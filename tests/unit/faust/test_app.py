"""The Faust window stage under ``test_context``: partials in, merged series in the table.

No broker: the app uses the memory store, the Kafka clients of the ingest
side are only built by ``start_ingest``, and the windows table's changelog
producer is replaced by a recorder (Faust asks a started producer for the
partition of every changelog write).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust.agents.agent
import pytest
from faust.types import TP, Message
from faust.types.tuples import ConsumerMessage
from prometheus_client import REGISTRY

from pipeline.app import Pipeline
from pipeline.clock import ManualClock
from pipeline.errors import SinkUnavailable
from pipeline.faust.partials_log import MemoryPartialsLog
from pipeline.model import Span, SpanHead
from pipeline.otlp.heads import head_of
from pipeline.settings import Settings
from pipeline.sinks.clickhouse import METRICS_TABLE
from pipeline.tables import key_bytes, key_of, raw_partition
from pipeline.windows.assembler import series_key
from pipeline.windows.hold import Hold
from pipeline.windows.partial import Partial, PartialAggregator
from pipeline.windows.series import SeriesState
from tests.unit.detect.test_state import marker_pickle

pytestmark = pytest.mark.agent
NS = 1_000_000_000
PARTITIONS = 3


class NullStore:
    """A Store that must not be used by the assemble agent."""

    def execute(self, sql: str) -> None:
        raise AssertionError("the assemble agent wrote to ClickHouse")

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        raise AssertionError("the assemble agent queried ClickHouse")

    def insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], dedup_token: str | None = None
    ) -> int:
        raise AssertionError("the assemble agent wrote to ClickHouse")

    def close(self) -> None:
        pass


def span(ts_s: float, ms: float, operation: str = "GET /cart") -> SpanHead:
    return head_of(Span(
        round(ts_s * NS), "ab" * 16, "cd" * 8, "", "", operation, "Server", "shop", {}, "", "",
        {}, round(ms * 1_000_000), "Unset", "", operation=operation,
    ))  # fmt: skip


def partials(
    source: int, spans: list[tuple[float, float]], operations: Sequence[str] = ("GET /cart",)
) -> list[Partial]:
    """One cut of ``spans``, each span once per operation."""
    agg = PartialAggregator(60, source)
    offset = 0
    for ts, ms in spans:
        for operation in operations:
            agg.add(span(ts, ms, operation), offset)
            offset += 1
    return agg.cut()


def table_value(table: Mapping[bytes, bytes], key: str) -> Any:
    """A table's value as the worker reads it: JSON under the key's JSON bytes."""
    return json.loads(table[key_bytes(key)])


@dataclass
class Stage:
    pipeline: Pipeline
    #: (key, value) of every write to the windows table's changelog
    changelog: list[tuple[str, Any]] = field(default_factory=list)


@pytest.fixture
def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stage:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", partials_partitions=PARTITIONS)
    stage = Stage(Pipeline(settings, NullStore(), datadir=str(tmp_path / "faust")))
    # The worker already builds its tables on the memory store; nothing to override.
    assert stage.pipeline.app.conf.store.scheme == "memory"

    def send_changelog(partition: int | None, key: bytes, value: Any, **_: Any) -> Any:
        stage.changelog.append((key_of(key), value))
        sent = raw_partition(key, PARTITIONS) if partition is None else partition
        return SimpleNamespace(message=SimpleNamespace(partition=sent))

    monkeypatch.setattr(stage.pipeline.faust.windows, "send_changelog", send_changelog)
    # No broker: nothing committed yet, and a read of a skipped offset must be declared.
    stage.pipeline.faust.readback.log = MemoryPartialsLog(settings.partials_topic, {})
    return stage


async def feed(pipeline: Pipeline, values: list[bytes]) -> list[Any]:
    agent = pipeline.app.agents["assemble"]
    async with agent.test_context() as test_agent:
        for value in values:
            await test_agent.put(value)
        return list(test_agent.results.values())


def test_building_the_app_needs_no_kafka_client(stage: Stage) -> None:
    assert stage.pipeline.loop is None
    assert "assemble" in stage.pipeline.app.agents


def test_assemble_merges_partials_of_all_sources_into_the_windows_table(stage: Stage) -> None:
    pipeline = stage.pipeline
    from_p0 = partials(0, [(1.0, 10.0), (2.0, 30.0), (61.0, 5.0)])
    from_p1 = partials(1, [(3.0, 20.0)])
    values = [p.to_json() for p in [*from_p0, *from_p1]]
    replayed = from_p0[0].to_json()  # redelivered after a crash: must not count twice

    results = asyncio.run(feed(pipeline, [*values, replayed]))

    assert results == [("shop", "GET /cart")] * 4
    key = series_key("shop", "GET /cart")
    state = SeriesState.from_dict(table_value(pipeline.faust.windows, key))
    assert {start // NS: w.requests for start, w in state.windows.items()} == {0: 3, 60: 1}
    assert state.windows[0].max_ns == 30 * 1_000_000
    assert state.through == {0: (2, (0, 60 * NS)), 1: (0, (0,))}
    assert pipeline.faust.assembler.duplicates == 1
    assert [k for k, _ in stage.changelog] == [key] * 3  # the duplicate wrote nothing
    assert stage.changelog[-1][1] == pipeline.faust.windows[key_bytes(key)]


def test_a_hold_marker_holds_its_source_and_yields_no_series(stage: Stage) -> None:
    pipeline = stage.pipeline
    first, second = (p.to_json() for p in partials(0, [(1.0, 10.0), (70.0, 5.0)]))

    async def feed_with_hold() -> list[Any]:
        agent = pipeline.app.agents["assemble"]
        async with agent.test_context() as test_agent:
            await test_agent.put(first)
            await test_agent.put(Hold(0).to_json(), wait=False)  # yields nothing to wait for
            await test_agent.put(second)
            return list(test_agent.results.values())

    results = asyncio.run(feed_with_hold())

    assert results == [("shop", "GET /cart")] * 2  # the marker is not a partial
    assert pipeline.faust.assembler.watermark.held_at(0) is not None
    assert len(stage.changelog) == 2  # and changes no table


class FlakyStore(NullStore):
    """Records inserts; refuses them while ``down`` (ClickHouse unavailable)."""

    def __init__(self) -> None:
        self.down = False
        self.inserted: dict[str, list[dict[str, Sequence[Any]]]] = {}
        self.tokens: list[str | None] = []

    def insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], dedup_token: str | None = None
    ) -> int:
        if self.down:
            raise SinkUnavailable("clickhouse down")
        self.inserted.setdefault(table, []).append(dict(columns))
        self.tokens.append(dedup_token)
        return len(next(iter(columns.values())))


@dataclass
class Closing:
    """A window stage with one due window, a flaky store and a record of table writes."""

    pipeline: Pipeline
    store: FlakyStore
    writes: list[str]
    key: str


@pytest.fixture
def closing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Closing:
    return make_closing(tmp_path, monkeypatch)


def make_closing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operations: Sequence[str] = ("GET /cart",)
) -> Closing:
    """A stage whose series (one per operation) each have one window due."""
    settings = Settings(kafka_bootstrap="127.0.0.1:1", partials_partitions=PARTITIONS)
    store = FlakyStore()
    pipeline = Pipeline(settings, store, datadir=str(tmp_path / "faust"))
    writes: list[str] = []

    def send_changelog(partition: int | None, key: bytes, value: Any, **_: Any) -> Any:
        writes.append(key_of(key))
        return SimpleNamespace(message=SimpleNamespace(partition=raw_partition(key, PARTITIONS)))

    for table in (pipeline.faust.windows, pipeline.faust.detectors):
        monkeypatch.setattr(table, "send_changelog", send_changelog)

    def owned() -> set[int]:  # no broker, no assignment: this worker owns every partition
        return set(range(PARTITIONS))

    for holder in (pipeline.faust, pipeline.faust.window_view, pipeline.faust.detector_view):
        monkeypatch.setattr(holder, "_owned", owned)
    pipeline.faust.readback.log = MemoryPartialsLog(settings.partials_topic, {})
    clock = ManualClock(1_000.0)
    pipeline.faust.assembler.clock = clock
    cut = partials(0, [(1.0, 10.0), (2.0, 30.0)], operations)
    asyncio.run(feed(pipeline, [p.to_json() for p in cut]))
    clock.advance(600)  # idle long past the window's end: it is due
    writes.clear()
    return Closing(pipeline, store, writes, series_key("shop", "GET /cart"))


def test_a_failed_close_changes_no_table_and_the_retry_closes_the_same_windows(
    closing: Closing,
) -> None:
    pipeline, store = closing.pipeline, closing.store
    before = (pipeline.faust.windows[key_bytes(closing.key)], dict(pipeline.faust.detectors))
    store.down = True
    asyncio.run(pipeline.faust.stage.close())
    assert closing.writes == []  # neither the windows nor the detectors table moved
    assert (
        pipeline.faust.windows[key_bytes(closing.key)],
        dict(pipeline.faust.detectors),
    ) == before

    store.down = False
    asyncio.run(pipeline.faust.stage.close())
    (rows,) = store.inserted[METRICS_TABLE]
    requests = list(rows["Requests"])
    # The window that failed to close closes now, once (then empty windows follow it).
    assert (requests[0], sum(requests)) == (2, 2)
    assert closing.key in closing.writes and key_bytes(closing.key) in pipeline.faust.detectors


def test_an_unexpected_error_in_a_close_loses_no_window(
    closing: Closing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in judging (not an outage) must not drop the windows it had closed in memory."""
    pipeline, store = closing.pipeline, closing.store
    judge = pipeline.faust.stage.judge_windows

    def broken(closed: Any) -> Any:
        raise RuntimeError("a detector bug")

    monkeypatch.setattr(pipeline.faust.stage, "judge_windows", broken)
    asyncio.run(pipeline.faust.stage.close())  # logged, not raised: the timer must go on
    assert closing.writes == []

    monkeypatch.setattr(pipeline.faust.stage, "judge_windows", judge)
    asyncio.run(pipeline.faust.stage.close())
    # Written twice under the same token (ClickHouse drops the repeat): same rows.
    first, second = store.inserted[METRICS_TABLE]
    assert list(second["Requests"]) == list(first["Requests"])
    assert next(iter(second["Requests"])) == 2
    assert store.tokens[0] == store.tokens[1]


def test_a_failed_alert_publish_undoes_the_detector_state_too(
    closing: Closing, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, store = closing.pipeline, closing.store

    publish, refusing = pipeline.faust.stage.publish, [True]

    async def flaky_publish(alerts: Sequence[Any]) -> None:
        if refusing[0]:
            raise SinkUnavailable("alert topic: broker down")
        await publish(alerts)

    monkeypatch.setattr(pipeline.faust.stage, "publish", flaky_publish)
    asyncio.run(pipeline.faust.stage.close())
    assert closing.writes == []  # scored, but no detector or window state was kept
    assert key_bytes(closing.key) not in pipeline.faust.detectors
    refusing[0] = False
    asyncio.run(pipeline.faust.stage.close())
    first, retry = store.inserted[METRICS_TABLE]
    assert first == retry and store.tokens[0] == store.tokens[1]  # deduplicated by ClickHouse
    assert key_bytes(closing.key) in pipeline.faust.detectors


def test_a_partial_in_hand_when_the_agent_stops_is_not_acked(stage: Stage) -> None:
    """Stopping (SIGTERM) while a partial waits for the lock must leave it uncommitted.

    Faust acks the event in hand when its stream's iterator is closed, whether or
    not the agent finished with it; an ack there would commit a partial that was
    never merged, and the next owner would never see it.
    """
    pipeline = stage.pipeline
    (first,) = (p.to_json() for p in partials(0, [(1.0, 10.0)]))

    async def stop_while_waiting() -> tuple[bool, bool]:
        agent = pipeline.app.agents["assemble"]
        async with agent.test_context() as test_agent:
            await pipeline.faust.stage.lock.acquire()  # a window close in progress
            event = await test_agent.put(first, wait=False)
            await wait_for(
                lambda: pipeline.faust.stage.lock._waiters, "the agent waiting for the lock"
            )
        pipeline.faust.stage.lock.release()
        return event.message.acked, series_key("shop", "GET /cart") in pipeline.faust.windows

    acked, merged = asyncio.run(stop_while_waiting())

    assert not merged
    assert not acked


def test_a_merged_partial_is_acked(stage: Stage) -> None:
    pipeline = stage.pipeline
    (first,) = (p.to_json() for p in partials(0, [(1.0, 10.0)]))

    async def merge_one() -> bool:
        agent = pipeline.app.agents["assemble"]
        async with agent.test_context() as test_agent:
            event = await test_agent.put(first)
            await wait_for(lambda: event.message.acked, "the ack of the merged partial")
            return bool(event.message.acked)

    assert asyncio.run(merge_one())
    assert key_bytes(series_key("shop", "GET /cart")) in pipeline.faust.windows


async def wait_for(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Poll ``condition`` on the event loop until true, failing after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def bad_partial(**changes: Any) -> bytes:
    (good,) = partials(0, [(1.0, 10.0)])
    return json.dumps({**good.to_dict(), **changes}).encode()


def bad_sketch(**changes: Any) -> bytes:
    (good,) = partials(0, [(1.0, 10.0)])
    return bad_partial(sketch={**good.sketch.to_dict(), **changes})


BAD_PARTIALS = {
    "fields": b'{"service": "shop"}',
    "json": b"not json",
    "tombstone": None,
    "pickle": pickle.dumps({"service": "shop"}),
    "window-size": bad_partial(window_end_ns=30 * NS),  # ValueError in merge: killed the agent
    "hold-overflow": b'{"hold": 1e400}',  # OverflowError: killed the agent
    "hold-type": b'{"hold": "0"}',
    "nan": bad_partial(max_ms=math.nan),
    "str-count": bad_partial(requests="1"),
    "errors-over-requests": bad_partial(errors=5),
    "extra-field": bad_partial(__class__="x"),
    "sketch-accuracy": bad_sketch(a=0.3),  # merging it raised ValueError
    "sketch-key": bad_sketch(k=[10**6], c=[1], n=1),  # gamma**key overflowed when closing
    "sketch-bins": bad_sketch(m=10**9),
    "sketch-counts": bad_sketch(n=7),
    "exemplars": bad_partial(exemplars=[["ab" * 16, 1, False]] * 1000),
}


@pytest.mark.parametrize("bad", list(BAD_PARTIALS.values()), ids=list(BAD_PARTIALS))
def test_an_unusable_partial_goes_to_the_dlq_counted_and_acked(
    stage: Stage, monkeypatch: pytest.MonkeyPatch, bad: bytes | None
) -> None:
    pipeline = stage.pipeline
    sent: list[dict[str, Any]] = []

    async def send(**kwargs: Any) -> Any:
        sent.append(kwargs)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    monkeypatch.setattr(pipeline.faust.dlq_topic, "send", send)
    before = REGISTRY.get_sample_value("spanstream_dlq_records_total", {"reason": "bad_partial"})
    (good,) = (p.to_json() for p in partials(0, [(1.0, 10.0)]))

    async def feed_bad_then_good() -> tuple[bool, list[Any]]:
        agent = pipeline.app.agents["assemble"]
        async with agent.test_context() as test_agent:
            event = await test_agent.put(bad, wait=False)
            await test_agent.put(good)
            return bool(event.message.acked), list(test_agent.results.values())

    acked, results = asyncio.run(feed_bad_then_good())

    assert results == [("shop", "GET /cart")]  # the stage went on after the bad value
    assert acked
    assert [s["value"] for s in sent] == [bad]
    headers = dict(sent[0]["headers"])
    assert headers["spanstream.error.reason"] == b"bad_partial"
    assert headers["spanstream.source.offset"] == b"0"
    after = REGISTRY.get_sample_value("spanstream_dlq_records_total", {"reason": "bad_partial"})
    assert (after or 0) - (before or 0) == 1


@pytest.mark.parametrize(
    ("committed", "offsets", "reread"),
    [
        (None, [0, 2], [(0, range(1, 2))]),  # skipped between two records
        (0, [1, 2], [(0, range(0, 1))]),  # skipped before the first record after assignment
        (0, [0, 1, 2], []),  # nothing skipped, nothing read
    ],
    ids=["between", "at-assignment", "none"],
)
def test_partials_the_consumer_skipped_are_read_back_and_merged(
    stage: Stage, committed: int | None, offsets: list[int], reread: list[tuple[int, range]]
) -> None:
    pipeline = stage.pipeline
    values = [p.to_json() for i in range(3) for p in partials(i, [(1.0 + i, 10.0)])]
    log = MemoryPartialsLog(pipeline.settings.partials_topic, {0: values})
    if committed is not None:
        log.commits[0] = committed
    pipeline.faust.readback.log = log
    before = REGISTRY.get_sample_value("spanstream_partials_reread_total") or 0

    async def feed_with_skips() -> None:
        agent = pipeline.app.agents["assemble"]
        async with agent.test_context() as test_agent:
            for offset in offsets:
                test_agent.sent_offset = offset
                await test_agent.put(values[offset])

    asyncio.run(feed_with_skips())

    assert log.reads == reread
    state = SeriesState.from_dict(
        table_value(pipeline.faust.windows, series_key("shop", "GET /cart"))
    )
    assert sum(w.requests for w in state.windows.values()) == 3  # every partial merged once
    after = REGISTRY.get_sample_value("spanstream_partials_reread_total") or 0
    assert after - before == sum(len(r) for _, r in reread)


def rejected(table: str, reason: str) -> float:
    labels = {"table": table, "reason": reason}
    return REGISTRY.get_sample_value("spanstream_state_rejected_total", labels) or 0.0


def restore(table: Any, key: bytes, value: bytes | None) -> None:
    """Apply one changelog record as Faust's recovery does: decoded by the changelog
    topic's codec, then applied to the table."""
    topic = table.changelog_topic
    message = Message(topic.get_topic_name(), 0, 0, 0.0, 0, [], key, value, None)

    async def decode() -> Any:
        return await topic.decode(message)

    table.apply_changelog_batch([asyncio.run(decode())])


def legacy_pickle(marker: Path) -> bytes:
    """What the version 1 worker stored: base64(pickle) in a JSON string, here one that
    creates ``marker`` when unpickled (the record that ran ``id`` on every worker)."""
    return json.dumps(base64.b64encode(marker_pickle(marker)).decode()).encode()


TAMPERED_DETECTOR_RECORDS: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "legacy-pickle": (legacy_pickle, "legacy_pickle"),
    "raw-pickle": (marker_pickle, "bad_json"),
    "garbage": (lambda _: b"\x80\x04\x95garbage\xff", "bad_json"),
    "wrong-type": (lambda _: b'{"v": 2, "model": [], "episodes": {}}', "schema"),
    "nan": (lambda _: b'{"v": 2, "model": {"kind": "robust", "v": 1, "features": NaN}}', "schema"),
}


@pytest.mark.parametrize(
    ("make_value", "reason"),
    list(TAMPERED_DETECTOR_RECORDS.values()),
    ids=list(TAMPERED_DETECTOR_RECORDS),
)
def test_a_tampered_detectors_record_is_never_run_and_windows_keep_closing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_value: Callable[[Path], bytes],
    reason: str,
) -> None:
    closing = make_closing(tmp_path, monkeypatch, ("GET /cart", "POST /pay"))
    pipeline, marker = closing.pipeline, tmp_path / "owned"
    evil = series_key("shop", "POST /pay")
    restore(pipeline.faust.detectors, key_bytes(evil), make_value(marker))
    before = rejected("detectors", reason)

    asyncio.run(pipeline.faust.stage.close())

    assert not marker.exists()
    assert rejected("detectors", reason) == before + 1
    (rows,) = closing.store.inserted[METRICS_TABLE]
    closed = {(op, n) for op, n in zip(rows["SpanName"], rows["Requests"], strict=True) if n}
    assert closed == {("GET /cart", 2), ("POST /pay", 2)}  # both series closed their window
    assert json.loads(pipeline.faust.detectors[key_bytes(evil)])["v"] == 2  # replaced, warming up
    asyncio.run(pipeline.faust.stage.close())
    assert rejected("detectors", reason) == before + 1


def test_a_tampered_windows_record_is_counted_deleted_and_the_other_series_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    closing = make_closing(tmp_path, monkeypatch, ("GET /cart", "POST /pay"))
    pipeline, marker = closing.pipeline, tmp_path / "owned"
    evil = series_key("shop", "POST /pay")
    restore(pipeline.faust.windows, key_bytes(evil), marker_pickle(marker))
    restore(pipeline.faust.windows, b"\xff not a key", b"{}")
    before = rejected("windows", "bad_json"), rejected("windows", "bad_key")
    pipeline.faust.assembler.reload()  # as after the recovery

    asyncio.run(pipeline.faust.stage.close())

    assert not marker.exists()
    assert (rejected("windows", "bad_json"), rejected("windows", "bad_key")) == (
        before[0] + 1,
        before[1] + 1,
    )
    (rows,) = closing.store.inserted[METRICS_TABLE]
    assert {op for op, n in zip(rows["SpanName"], rows["Requests"], strict=True) if n} == {
        "GET /cart"
    }
    assert key_bytes(evil) not in pipeline.faust.windows  # a tombstone: compacted away
    pipeline.faust.assembler.reload()
    assert rejected("windows", "bad_key") == before[1] + 1  # counted once, not per reload
    logged = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(logged) == 2 and all(m.isprintable() and m.isascii() for m in logged)


def test_no_faust_codec_decodes_what_the_stage_reads(stage: Stage) -> None:
    """Raw bytes everywhere: the app's defaults, its topics, both tables' keys and values."""
    pipeline = stage.pipeline
    conf = pipeline.app.conf
    assert (conf.key_serializer, conf.value_serializer) == ("raw", "raw")
    for table in (pipeline.faust.windows, pipeline.faust.detectors):
        assert (table.key_serializer, table.value_serializer) == ("raw", "raw")
        topic = table.changelog_topic
        assert (topic.key_serializer, topic.value_serializer) == ("raw", "raw")
    for topic in (
        pipeline.faust.partials_topic,
        pipeline.faust.alerts_topic,
        pipeline.faust.dlq_topic,
    ):
        assert (topic.key_serializer, topic.value_serializer) == ("raw", "raw")


@dataclass
class Committing:
    """The stage with Faust's consumer bookkeeping live (its thread not started)."""

    pipeline: Pipeline
    log: MemoryPartialsLog
    consumer: Any
    tp: TP
    values: list[bytes]

    async def feed(self, *offsets: int) -> None:
        agent = self.pipeline.app.agents["assemble"]
        async with agent.test_context() as test_agent:
            for offset in offsets:
                test_agent.sent_offset = offset
                await test_agent.put(self.values[offset])


@pytest.fixture
def committing(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> Committing:
    """Partition 0 committed at 1 (offset 0 merged, acked, committed), offsets 0-4 in Kafka."""
    pipeline = stage.pipeline
    topic = pipeline.settings.partials_topic
    values = [p.to_json() for i in range(5) for p in partials(i, [(1.0 + i, 10.0)])]
    log = MemoryPartialsLog(topic, {0: values})
    log.commits[0] = 1
    pipeline.faust.readback.log = log
    consumer, tp = pipeline.app.consumer, TP(topic, 0)
    consumer._committed_offset[tp] = 1
    monkeypatch.setattr(consumer, "assignment", lambda: {tp})
    monkeypatch.setattr(pipeline.app.topics, "acks_enabled_for", lambda name: name == topic)
    monkeypatch.setattr(faust.agents.agent, "Message", ConsumerMessage)  # acks reach it
    return Committing(pipeline, log, consumer, tp, values)


def test_a_range_read_back_after_a_partitions_first_record_is_committed_past(
    committing: Committing,
) -> None:
    """Issue #12: Faust skipped 1-2 right after the first record without recording a gap.

    Its fetch loop reads a last-read offset of 0 as none, so it waited for acks of
    1-2 forever and refused every later commit: the partition stayed at offset 1.
    """
    asyncio.run(committing.feed(3))

    assert committing.log.reads == [(0, range(1, 3))]
    assert committing.consumer._filter_committable_offsets([committing.tp]) == {committing.tp: 4}


def test_a_range_read_back_across_a_rebalance_is_read_again_in_the_new_generation(
    committing: Committing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebalance during the read-back: Faust dropped its bookkeeping of the partition.

    Nothing is recorded for the old generation; the stage tracks the partition
    afresh, so the next record shows the jump from the commit again.
    """
    pipeline, log = committing.pipeline, committing.log
    read = log.read

    def read_during_a_rebalance(partition: int, offsets: range) -> list[Any]:
        if not log.reads:  # the first read-back only
            pipeline.app.consumer_generation_id += 1
        return read(partition, offsets)

    monkeypatch.setattr(log, "read", read_during_a_rebalance)
    asyncio.run(committing.feed(3, 4))

    assert log.reads == [(0, range(1, 3)), (0, range(1, 4))]
    assert committing.consumer._filter_committable_offsets([committing.tp]) == {committing.tp: 5}


def test_a_commit_faust_holds_for_offsets_merged_before_a_rebalance_is_released(
    committing: Committing,
) -> None:
    """Issue #12, no jump seen: records delivered before Faust's seek, acks of 1-2 dropped.

    Faust's revoke drops its acks of the kept partition; records fetched before
    its seek come without a gap, and the ones it delivers again from its commit
    are dropped (behind its read offset). Its head rule then holds the commit.
    """
    pipeline, consumer, tp = committing.pipeline, committing.consumer, committing.tp
    asyncio.run(committing.feed(1, 2))
    consumer._acked.pop(tp)  # the revoke; kept: the seek puts the commit back at 1
    consumer._acked_index.pop(tp)
    asyncio.run(committing.feed(3, 4))
    assert consumer._filter_committable_offsets([tp]) == {}  # held

    for _ in range(2):  # seen twice: not a moment in a rebalance
        asyncio.run(pipeline.faust.settle_stalled())

    assert committing.log.reads == []  # merged already: nothing to read
    assert consumer._filter_committable_offsets([tp]) == {tp: 5}


class Highwaters:
    """A consumer's view of the partials partitions: high watermark per partition."""

    def __init__(self, high: dict[int, int]) -> None:
        self.high = high

    def highwater(self, tp: Any) -> int | None:
        return self.high.get(tp.partition)


@pytest.mark.parametrize(("high", "queued"), [({0: 10, 1: 5}, False), ({0: 10, 1: 7}, True)])
def test_partials_are_queued_while_an_owned_partition_has_unread_records(
    stage: Stage, monkeypatch: pytest.MonkeyPatch, high: dict[int, int], queued: bool
) -> None:
    """Rule 11 of the watermark asks this: unread partials hold everything open."""
    app = stage.pipeline.faust
    monkeypatch.setattr(app, "_owned", lambda: {0, 1})
    monkeypatch.setattr(app.app, "consumer", Highwaters(high), raising=False)
    app.readback.continuity.expect(0, 10)  # every record below 10 taken in
    app.readback.continuity.expect(1, 5)
    assert app._partials_queued() is queued


# -- SLOs -------------------------------------------------------------------------------------


def test_with_slos_the_stage_counts_sli_records_into_the_slo_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.slo.ledger import SliCount, slo_key
    from pipeline.slo.spec import Slo, SloSet

    slos = SloSet((Slo("up", "shop", (), "availability", 99.0),))
    settings = Settings(kafka_bootstrap="127.0.0.1:1", partials_partitions=PARTITIONS)
    pipeline = Pipeline(settings, NullStore(), datadir=str(tmp_path / "faust"), slos=slos)
    assert pipeline.faust.stage.slo is not None and "slo" in pipeline.app.tables
    assert pipeline.core.thresholds == {}  # no latency SLO: nothing extra counted

    def send_changelog(partition: int | None, key: bytes, value: Any, **_: Any) -> Any:
        return SimpleNamespace(message=SimpleNamespace(partition=partition or 0))

    monkeypatch.setattr(pipeline.faust.slo_table, "send_changelog", send_changelog)
    monkeypatch.setattr(pipeline.faust.windows, "send_changelog", send_changelog)
    pipeline.faust.readback.log = MemoryPartialsLog(settings.partials_topic, {})
    count = SliCount("up", "shop", "GET /", 0, 60 * NS, 9, 10).to_json()
    (partial,) = partials(0, [(1.0, 10.0)])

    async def feed_counts() -> list[Any]:
        agent = pipeline.app.agents["assemble"]
        async with agent.test_context() as test_agent:
            for _ in range(2):
                await test_agent.put(count, wait=False)  # yields nothing to wait for
            await test_agent.put(partial.to_json())
            return list(test_agent.results.values())

    assert asyncio.run(feed_counts()) == [("shop", "GET /cart")]  # the counts are no series
    state = table_value(pipeline.faust.slo_table, slo_key("up"))
    assert state["fine"][3:] == [[9], [10]]  # counted once


def test_without_slos_there_is_no_slo_table(stage: Stage) -> None:
    assert stage.pipeline.faust.stage.slo is None and "slo" not in stage.pipeline.app.tables
