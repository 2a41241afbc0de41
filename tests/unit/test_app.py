"""The Faust window stage under ``test_context``: partials in, merged series in the table.

No broker: the app uses the memory store, the Kafka clients of the ingest
side are only built by ``start_ingest``, and the windows table's changelog
producer is replaced by a recorder (Faust asks a started producer for the
partition of every changelog write).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest

from pipeline import app as app_module
from pipeline import metrics
from pipeline.app import Pipeline
from pipeline.errors import SinkUnavailable
from pipeline.model import Span
from pipeline.settings import Settings
from pipeline.sinks.clickhouse import METRICS_TABLE
from pipeline.tables import partition_of
from pipeline.testing.clock import ManualClock
from pipeline.windows.assembler import Hold, series_key
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
    return stage


async def feed(pipeline: Pipeline, values: list[bytes]) -> None:
    """Put ``values`` on the partials topic; return once the agent took all of them in.

    The agent consumes in batches and yields nothing to wait for, so this waits
    for its ``_take_in`` calls; a batch's table saves follow its last call with no
    await in between, so they are done too.
    """
    taken: list[bytes] = []
    take_in = pipeline._take_in

    def counting(value: bytes) -> None:
        take_in(value)
        taken.append(value)

    pipeline._take_in = counting  # type: ignore[method-assign]
    agent = pipeline.app.agents["assemble"]
    async with agent.test_context() as test_agent:
        for value in values:
            await test_agent.put(value, wait=False)
        for _ in range(1000):
            if len(taken) >= len(values):
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"the agent took in {len(taken)} of {len(values)} values")


def batches_of(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make the agent's batches exactly ``n`` values (the wait never runs out first)."""
    monkeypatch.setattr(app_module, "ASSEMBLE_BATCH", n)
    monkeypatch.setattr(app_module, "ASSEMBLE_WITHIN_SECONDS", 30.0)


def test_building_the_app_needs_no_kafka_client(stage: Stage) -> None:
    assert stage.pipeline.loop is None
    assert "assemble" in stage.pipeline.app.agents


def test_assemble_merges_partials_of_all_sources_into_the_windows_table(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = stage.pipeline
    from_p0 = partials(0, [(1.0, 10.0), (2.0, 30.0), (61.0, 5.0)])
    from_p1 = partials(1, [(3.0, 20.0)])
    values = [p.to_json() for p in [*from_p0, *from_p1]]
    replayed = from_p0[0].to_json()  # redelivered after a crash: must not count twice
    batches_of(monkeypatch, 4)

    asyncio.run(feed(pipeline, [*values, replayed]))

    key = series_key("shop", "GET /cart")
    state = SeriesState.from_dict(pipeline.windows[key])
    assert {start // NS: w.requests for start, w in state.windows.items()} == {0: 3, 60: 1}
    assert state.windows[0].max_ns == 30 * 1_000_000
    assert state.through == {0: (2, (0, 60 * NS)), 1: (0, (0,))}
    assert pipeline.assembler.duplicates == 1
    # One batch: the series is serialised and written to the changelog once.
    assert [k for k, _ in stage.changelog] == [key]
    assert stage.changelog[-1][1] == pipeline.windows[key]


def test_each_batch_writes_each_series_it_touched_once(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = stage.pipeline
    cart = partials(0, [(1.0, 10.0), (61.0, 5.0), (121.0, 7.0)])
    agg = PartialAggregator(60, 1)
    agg.add(span(2.0, 3.0, operation="GET /pay"), 0)
    (pay,) = agg.cut()
    batches_of(monkeypatch, 2)

    asyncio.run(feed(pipeline, [p.to_json() for p in [cart[0], pay, cart[1], cart[2]]]))

    cart_key, pay_key = series_key("shop", "GET /cart"), series_key("shop", "GET /pay")
    assert [k for k, _ in stage.changelog] == [cart_key, pay_key, cart_key]
    cart_state = SeriesState.from_dict(pipeline.windows[cart_key])
    assert sorted(s // NS for s in cart_state.windows) == [0, 60, 120]


def test_a_batch_is_acked_only_after_its_table_changes(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At each ack, the acked partial is already a duplicate of the table's value.

    So a crash after the ack (the offset committed) can lose no partial: the
    changelog write that holds it was handed to Faust before.
    """
    pipeline = stage.pipeline
    sent = [*partials(0, [(1.0, 10.0), (61.0, 5.0)]), *partials(1, [(2.0, 4.0), (62.0, 6.0)])]
    acked: list[bool] = []
    ack = faust.Stream.ack

    async def checking_ack(self: Any, event: Any) -> bool:
        if not Hold.is_hold(event.value):
            partial = Partial.from_json(event.value)
            written = dict(stage.changelog).get(series_key(*partial.series))
            acked.append(
                written is not None and SeriesState.from_dict(written).is_duplicate(partial)
            )
        return bool(await ack(self, event))

    monkeypatch.setattr(faust.Stream, "ack", checking_ack)
    batches_of(monkeypatch, 3)
    values = [p.to_json() for p in sent]
    asyncio.run(feed(pipeline, [values[0], Hold(1).to_json(), *values[1:], Hold(0).to_json()]))

    assert acked == [True] * 4  # two batches of three (markers acked unchecked)


def test_a_batch_in_hand_when_the_agent_stops_is_still_merged_and_saved(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker stopping while a close holds the lock: the batch in hand is merged anyway.

    Stopping the stream closes the take() generator, which acks the batch at once
    (faust/streams.py ``Stream.on_stop``), and a stopping worker commits after its
    agents stopped: the batch must reach the table, not be dropped with the
    cancelled agent.
    """
    pipeline = stage.pipeline
    values = [p.to_json() for p in partials(0, [(1.0, 10.0), (61.0, 5.0)])]
    batches_of(monkeypatch, 2)

    async def stop_while_closing() -> None:
        agent = pipeline.app.agents["assemble"]
        async with agent.test_context() as test_agent:
            await pipeline.lock.acquire()  # the close timer, writing to ClickHouse
            for value in values:
                await test_agent.put(value, wait=False)
            await asyncio.sleep(0.2)  # the agent has its batch and waits for the lock
            asyncio.get_running_loop().call_later(0.3, pipeline.lock.release)
        # leaving the context stopped the stream and cancelled the agent
        await asyncio.sleep(0.5)

    asyncio.run(stop_while_closing())

    assert pipeline.assembler.merged == 2
    key = series_key("shop", "GET /cart")
    assert [k for k, _ in stage.changelog] == [key]
    assert sorted(SeriesState.from_dict(stage.changelog[-1][1]).windows) == [0, 60 * NS]


def test_an_unusable_value_drops_alone_not_with_its_batch(
    stage: Stage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = stage.pipeline
    good = [p.to_json() for p in partials(0, [(1.0, 10.0), (61.0, 5.0)])]
    batches_of(monkeypatch, 3)

    counted = metrics.DECODE_ERRORS.labels("bad_partial")._value.get()

    asyncio.run(feed(pipeline, [good[0], b"{not json", good[1]]))

    assert pipeline.assembler.merged == 2
    assert "partials topic value dropped" in caplog.text
    assert metrics.DECODE_ERRORS.labels("bad_partial")._value.get() == counted + 1


def test_a_hold_marker_holds_its_source_and_changes_no_table(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = stage.pipeline
    first, second = (p.to_json() for p in partials(0, [(1.0, 10.0), (70.0, 5.0)]))
    batches_of(monkeypatch, 1)

    asyncio.run(feed(pipeline, [first, Hold(0).to_json(), second]))

    assert pipeline.assembler._sources[0].held_at is not None
    assert pipeline.assembler.merged == 2
    assert len(stage.changelog) == 2  # one per partial's batch; the marker's wrote nothing


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
