"""The Faust window stage under ``test_context``: partials in, merged series in the table.

No broker: the app uses the memory store, the Kafka clients of the ingest
side are only built by ``start_ingest``, and the windows table's changelog
producer is replaced by a recorder (Faust asks a started producer for the
partition of every changelog write).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust.agents.agent
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from prometheus_client import REGISTRY

from pipeline.app import Pipeline
from pipeline.errors import SinkUnavailable
from pipeline.model import Span
from pipeline.partials_log import MemoryPartialsLog
from pipeline.settings import Settings
from pipeline.sinks.clickhouse import METRICS_TABLE
from pipeline.tables import partition_of
from pipeline.testing.clock import ManualClock
from pipeline.windows.assembler import series_key
from pipeline.windows.hold import Hold
from pipeline.windows.partial import Partial, PartialAggregator
from pipeline.windows.series import SeriesState

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


def span(ts_s: float, ms: float, operation: str = "GET /cart") -> Span:
    return Span(
        round(ts_s * NS), "ab" * 16, "cd" * 8, "", "", operation, "Server", "shop", {}, "", "",
        {}, round(ms * 1_000_000), "Unset", "", operation=operation,
    )  # fmt: skip


def partials(source: int, spans: list[tuple[float, float]]) -> list[Partial]:
    agg = PartialAggregator(60, source)
    for offset, (ts, ms) in enumerate(spans):
        agg.add(span(ts, ms), offset)
    return agg.cut()


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

    def send_changelog(partition: int | None, key: str, value: Any, **_: Any) -> Any:
        stage.changelog.append((key, value))
        sent = partition_of(key, PARTITIONS) if partition is None else partition
        return SimpleNamespace(message=SimpleNamespace(partition=sent))

    monkeypatch.setattr(stage.pipeline.windows, "send_changelog", send_changelog)
    # No broker: nothing committed yet, and a read of a skipped offset must be declared.
    stage.pipeline.partials_log = MemoryPartialsLog(settings.partials_topic, {})
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
    state = SeriesState.from_dict(pipeline.windows[key])
    assert {start // NS: w.requests for start, w in state.windows.items()} == {0: 3, 60: 1}
    assert state.windows[0].max_ns == 30 * 1_000_000
    assert state.through == {0: (2, (0, 60 * NS)), 1: (0, (0,))}
    assert pipeline.assembler.duplicates == 1
    assert [k for k, _ in stage.changelog] == [key] * 3  # the duplicate wrote nothing
    assert stage.changelog[-1][1] == pipeline.windows[key]


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
    assert pipeline.assembler._sources[0].held_at is not None
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
    settings = Settings(kafka_bootstrap="127.0.0.1:1", partials_partitions=PARTITIONS)
    store = FlakyStore()
    pipeline = Pipeline(settings, store, datadir=str(tmp_path / "faust"))
    writes: list[str] = []

    def send_changelog(partition: int | None, key: str, value: Any, **_: Any) -> Any:
        writes.append(key)
        return SimpleNamespace(message=SimpleNamespace(partition=partition_of(key, PARTITIONS)))

    for table in (pipeline.windows, pipeline.detectors):
        monkeypatch.setattr(table, "send_changelog", send_changelog)

    def owned() -> set[int]:  # no broker, no assignment: this worker owns every partition
        return set(range(PARTITIONS))

    for holder in (pipeline, pipeline.window_view, pipeline.detector_view):
        monkeypatch.setattr(holder, "_owned", owned)
    pipeline.partials_log = MemoryPartialsLog(settings.partials_topic, {})
    clock = ManualClock(1_000.0)
    pipeline.assembler.clock = clock
    asyncio.run(feed(pipeline, [p.to_json() for p in partials(0, [(1.0, 10.0), (2.0, 30.0)])]))
    clock.advance(600)  # idle long past the window's end: it is due
    writes.clear()
    return Closing(pipeline, store, writes, series_key("shop", "GET /cart"))


def test_a_failed_close_changes_no_table_and_the_retry_closes_the_same_windows(
    closing: Closing,
) -> None:
    pipeline, store = closing.pipeline, closing.store
    before = (pipeline.windows[closing.key], dict(pipeline.detectors))
    store.down = True
    asyncio.run(pipeline._close())
    assert closing.writes == []  # neither the windows nor the detectors table moved
    assert (pipeline.windows[closing.key], dict(pipeline.detectors)) == before

    store.down = False
    asyncio.run(pipeline._close())
    (rows,) = store.inserted[METRICS_TABLE]
    requests = list(rows["Requests"])
    # The window that failed to close closes now, once (then empty windows follow it).
    assert (requests[0], sum(requests)) == (2, 2)
    assert closing.key in closing.writes and closing.key in pipeline.detectors


def test_an_unexpected_error_in_a_close_loses_no_window(
    closing: Closing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in judging (not an outage) must not drop the windows it had closed in memory."""
    pipeline, store = closing.pipeline, closing.store
    judge = pipeline._judge

    def broken(closed: Any) -> Any:
        raise RuntimeError("a detector bug")

    monkeypatch.setattr(pipeline, "_judge", broken)
    asyncio.run(pipeline._close())  # logged, not raised: the timer must go on
    assert closing.writes == []

    monkeypatch.setattr(pipeline, "_judge", judge)
    asyncio.run(pipeline._close())
    # Written twice under the same token (ClickHouse drops the repeat): same rows.
    first, second = store.inserted[METRICS_TABLE]
    assert list(second["Requests"]) == list(first["Requests"])
    assert next(iter(second["Requests"])) == 2
    assert store.tokens[0] == store.tokens[1]


def test_a_failed_alert_publish_undoes_the_detector_state_too(
    closing: Closing, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, store = closing.pipeline, closing.store

    publish, refusing = pipeline._publish, [True]

    async def flaky_publish(alerts: Sequence[Any]) -> None:
        if refusing[0]:
            raise SinkUnavailable("alert topic: broker down")
        await publish(alerts)

    monkeypatch.setattr(pipeline, "_publish", flaky_publish)
    asyncio.run(pipeline._close())
    assert closing.writes == []  # scored, but no detector or window state was kept
    assert closing.key not in pipeline.detectors
    refusing[0] = False
    asyncio.run(pipeline._close())
    first, retry = store.inserted[METRICS_TABLE]
    assert first == retry and store.tokens[0] == store.tokens[1]  # deduplicated by ClickHouse
    assert closing.key in pipeline.detectors


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
            await pipeline.lock.acquire()  # a window close in progress
            event = await test_agent.put(first, wait=False)
            await wait_for(lambda: pipeline.lock._waiters, "the agent waiting for the lock")
        pipeline.lock.release()
        return event.message.acked, series_key("shop", "GET /cart") in pipeline.windows

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
    assert series_key("shop", "GET /cart") in pipeline.windows


async def wait_for(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Poll ``condition`` on the event loop until true, failing after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "bad", [b'{"service": "shop"}', b"not json", None], ids=["fields", "json", "tombstone"]
)
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

    monkeypatch.setattr(pipeline.dlq_topic, "send", send)
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
    pipeline.partials_log = log
    before = REGISTRY.get_sample_value("spanstream_partials_reread_total") or 0

    async def feed_with_skips() -> None:
        agent = pipeline.app.agents["assemble"]
        async with agent.test_context() as test_agent:
            for offset in offsets:
                test_agent.sent_offset = offset
                await test_agent.put(values[offset])

    asyncio.run(feed_with_skips())

    assert log.reads == reread
    state = SeriesState.from_dict(pipeline.windows[series_key("shop", "GET /cart")])
    assert sum(w.requests for w in state.windows.values()) == 3  # every partial merged once
    after = REGISTRY.get_sample_value("spanstream_partials_reread_total") or 0
    assert after - before == sum(len(r) for _, r in reread)


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
    pipeline.partials_log = log
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
        asyncio.run(pipeline._settle_stalled())

    assert committing.log.reads == []  # merged already: nothing to read
    assert consumer._filter_committable_offsets([tp]) == {tp: 5}
