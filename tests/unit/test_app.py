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

import pytest

from pipeline.app import Pipeline
from pipeline.model import Span
from pipeline.settings import Settings
from pipeline.tables import partition_of
from pipeline.windows.assembler import series_key
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
