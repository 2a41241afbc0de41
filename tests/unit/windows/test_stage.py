"""The window stage without Faust: plain tables, a recording store and topic."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from prometheus_client import REGISTRY

from pipeline.clock import ManualClock
from pipeline.judge import WindowJudge
from pipeline.sampling.anomaly import AnomalyFlags
from pipeline.sinks.clickhouse import METRICS_TABLE
from pipeline.windows.assembler import WindowAssembler
from pipeline.windows.partial import PartialAggregator
from pipeline.windows.stage import Record, StagedTable, WindowStage
from tests.unit.windows.conftest import SpanFactory

NS = 1_000_000_000


class DictTable(StagedTable):
    """A dict whose staged writes are undone when the block raises (the stage's contract)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @contextmanager
    def staged(self) -> Iterator[None]:
        before = dict(self.data)
        try:
            yield
        except BaseException:
            self.data = before
            raise


class Recorder:
    """A store and a topic: keeps every insert and every message."""

    def __init__(self) -> None:
        self.inserted: dict[str, list[Mapping[str, Sequence[Any]]]] = {}
        self.sent: list[dict[str, Any]] = []

    def insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], dedup_token: str | None = None
    ) -> int:
        self.inserted.setdefault(table, []).append(columns)
        return len(next(iter(columns.values())))

    async def send(self, **kwargs: Any) -> Any:
        self.sent.append(kwargs)
        return asyncio.sleep(0)


def make_stage(clock: ManualClock, flags: AnomalyFlags, recorder: Recorder) -> WindowStage:
    windows = DictTable()
    assembler = WindowAssembler(
        60, 0, clock, idle_close_seconds=10, startup_hold_seconds=0, store=windows
    )
    return WindowStage(
        assembler=assembler,
        judge=WindowJudge(),
        flags=flags,
        store=recorder,  # type: ignore[arg-type]
        windows=windows,
        detectors=DictTable(),
        dlq=recorder,
        alerts=recorder,
        settled=lambda: True,
    )


def test_a_close_prunes_the_flags_whose_windows_every_series_closed(span: SpanFactory) -> None:
    """Without the prune, flags stay until ``max_flags`` and every trace is checked on."""
    clock, flags, recorder = ManualClock(1_000.0), AnomalyFlags(), Recorder()
    stage = make_stage(clock, flags, recorder)
    flags.flag("shop", "GET /cart", until_ns=180 * NS)  # window [0, 60) + two windows
    flags.flag("shop", "POST /pay", until_ns=10_000 * NS)
    agg = PartialAggregator(60, 0)
    agg.add(span(1.0, 10.0), 0)
    (partial,) = agg.cut()

    async def run() -> None:
        await stage.take_in(Record("partials", 0, 0, None, partial.to_json()))
        clock.advance(300)  # stopped: watermark 1 s + 300 s; closed through 241 s
        await stage.close()

    asyncio.run(run())

    assert recorder.inserted[METRICS_TABLE]  # the close happened
    assert not flags.matches("shop", "GET /cart", 100 * NS)
    assert flags.matches("shop", "POST /pay", 100 * NS)
    assert len(flags) == 1


def test_a_hold_marker_is_not_a_series(span: SpanFactory) -> None:
    clock, recorder = ManualClock(1_000.0), Recorder()
    stage = make_stage(clock, AnomalyFlags(), recorder)
    assert asyncio.run(stage.take_in(Record("partials", 0, 0, None, b'{"hold": 0}'))) is None
    assert recorder.sent == []  # not dead-lettered either


class FailingOnce(DictTable):
    """A detectors table whose first write fails (a bug mid-close: the close is retried)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def __setitem__(self, key: str, value: Any) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("first write fails")
        super().__setitem__(key, value)


def test_windows_count_as_closed_once_every_effect_of_the_close_is_written(
    span: SpanFactory,
) -> None:
    """``spanstream_windows_closed_total`` covers the windows table only when their
    alerts are written too (a reader waits on it), and a retried close counts once."""
    clock, recorder = ManualClock(1_000.0), Recorder()
    stage = make_stage(clock, AnomalyFlags(), recorder)
    stage.detectors = FailingOnce()
    agg = PartialAggregator(60, 0)
    agg.add(span(1.0, 10.0), 0)
    (partial,) = agg.cut()
    before = REGISTRY.get_sample_value("spanstream_windows_closed_total") or 0.0

    async def run() -> None:
        await stage.take_in(Record("partials", 0, 0, None, partial.to_json()))
        clock.advance(300)
        await stage.close()  # windows written, then judging fails: not closed
        assert len(recorder.inserted[METRICS_TABLE]) == 1
        assert REGISTRY.get_sample_value("spanstream_windows_closed_total") == before
        await stage.close()  # the retry writes the same rows again and completes

    asyncio.run(run())

    assert len(recorder.inserted[METRICS_TABLE]) == 2
    closed = len(recorder.inserted[METRICS_TABLE][0]["WindowStart"])
    assert REGISTRY.get_sample_value("spanstream_windows_closed_total") == before + closed


def test_an_sli_count_reaching_a_stage_without_slos_is_dropped_not_dead_lettered() -> None:
    from pipeline.slo.ledger import SliCount

    clock, recorder = ManualClock(1_000.0), Recorder()
    stage = make_stage(clock, AnomalyFlags(), recorder)
    count = SliCount("up", "shop", "GET /", 0, 60 * NS, 1, 1).to_json()
    assert asyncio.run(stage.take_in(Record("partials", 0, 0, None, count))) is None
    assert recorder.sent == []
    bad = b'{"slo_sli": [1]}'  # a damaged one is a bad partial, as any other
    assert asyncio.run(stage.take_in(Record("partials", 0, 1, None, bad))) is None
    assert [m["headers"] for m in recorder.sent] and len(recorder.sent) == 1
