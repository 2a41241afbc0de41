"""The SLO shell inside the window stage, without Faust: OwnedView over dicts (real
staging), a recording store and topic; SLI records are fed back as the partials
topic would deliver them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pipeline.clock import ManualClock
from pipeline.faust.tables import OwnedView
from pipeline.judge import WindowJudge
from pipeline.sampling.anomaly import AnomalyFlags
from pipeline.slo.ledger import SliCount
from pipeline.slo.spec import BurnAlertRule, Slo, SloSet
from pipeline.slo.stage import SLO_BURN_TABLE, SloStage
from pipeline.windows.assembler import WindowAssembler
from pipeline.windows.partial import PartialAggregator
from pipeline.windows.stage import Record, WindowStage
from tests.unit.windows.conftest import make_span
from tests.unit.windows.test_stage import Recorder

S = 1_000_000_000
RULE = BurnAlertRule("page", 300, 60, 10)
SLOS = SloSet(
    (
        Slo("up", "shop", (), "availability", 99.0, burn_alerts=(RULE,)),
        Slo("fast", "shop", ("GET /cart",), "latency", 99.0, threshold_ms=100, burn_alerts=(RULE,)),
    )
)


class Rig:
    def __init__(self) -> None:
        self.clock, self.recorder = ManualClock(1_000.0), Recorder()
        self.tables: dict[str, dict[bytes, bytes]] = {"w": {}, "d": {}, "s": {}}
        owned = set(range(6))
        view = {k: OwnedView(t, 6, lambda: owned, k) for k, t in self.tables.items()}
        assembler = WindowAssembler(
            60, 0, self.clock, idle_close_seconds=10, startup_hold_seconds=0, store=view["w"]
        )
        self.slo = SloStage(
            slos=SLOS, window_ns=60 * S, table=view["s"], store=self.recorder,  # type: ignore[arg-type]
            partials=self.recorder, alerts=self.recorder, partitions=6,
        )  # fmt: skip
        self.stage = WindowStage(
            assembler=assembler, judge=WindowJudge(), flags=AnomalyFlags(),
            store=self.recorder,  # type: ignore[arg-type]
            windows=view["w"], detectors=view["d"], dlq=self.recorder, alerts=self.recorder,
            settled=lambda: True, slo=self.slo,
        )  # fmt: skip
        self.offset = 0
        self.fed = 0

    def minute(self, m: int, errors: int, slow: int = 0, requests: int = 100) -> None:
        agg = PartialAggregator(60, 0, skip_through=self.offset - 1,
                                thresholds=SLOS.thresholds_by_service())  # fmt: skip
        for i in range(requests):
            ms = 500 if i < slow else 10
            agg.add(make_span(m * 60 + 1 + i / 1000, ms, error=i < errors), self.offset)
        (partial,) = agg.cut()
        self.offset += 1

        async def run() -> None:
            await self.stage.take_in(Record("partials", 0, self.offset, None, partial.to_json()))
            self.clock.advance(60)
            await self.stage.close()
            await self.feed_back()

        asyncio.run(run())

    async def feed_back(self) -> None:
        """Deliver the SLI records the close sent (as the partials topic would)."""
        sent = self.recorder.sent[self.fed :]
        self.fed = len(self.recorder.sent)
        for m in sent:
            if SliCount.is_sli(m["value"]):
                await self.stage.take_in(
                    Record("partials", m["partition"], 0, m["key"], m["value"])
                )

    def alerts(self) -> list[dict[str, Any]]:
        out = [json.loads(m["value"]) for m in self.recorder.sent]
        return [a for a in out if isinstance(a, dict) and a.get("kind") == "slo_burn"]

    def rows(self) -> list[tuple[str, int, int, list[str]]]:
        out = []
        for cols in self.recorder.inserted.get(SLO_BURN_TABLE, []):
            out += list(zip(cols["Slo"], cols["Good"], cols["Total"], cols["Firing"], strict=True))
        return out


def test_a_burst_pages_within_the_expected_windows_and_resolves_after_it() -> None:
    rig = Rig()
    for m in range(4):
        rig.minute(m, errors=0)
    for m in range(4, 8):
        rig.minute(m, errors=20)  # 20 % errors at 99 %: burning at 20x
    for m in range(8, 14):
        rig.minute(m, errors=0)
    firing = [a for a in rig.alerts() if a["status"] == "firing"]
    assert firing and firing[0]["slo"] == "up" and firing[0]["severity"] == "critical"
    # The 5 m window passes 10x once 3 of its 5 windows burn at 20x: window 6 (evaluated
    # once the next window's counts are in). Firing at 6 and 7; resolved at 8, where the
    # 1 m window is clean again.
    assert [a["window_start"][-13:-8] for a in firing] == ["00:06", "00:07"]
    resolved = [a for a in rig.alerts() if a["status"] == "resolved"]
    assert [a["alert_id"] for a in resolved] == [firing[0]["alert_id"]]
    assert resolved[0]["window_start"][-13:-8] == "00:08"
    assert not any(a["slo"] == "fast" for a in rig.alerts())  # no slow requests


def test_a_slow_burst_burns_the_latency_slo_only_and_rows_hold_exact_counts() -> None:
    rig = Rig()
    for m in range(6):
        rig.minute(m, errors=0, slow=30)
    assert {a["slo"] for a in rig.alerts()} == {"fast"}
    rows = rig.rows()
    assert ("up", 100, 100, []) in rows and ("fast", 70, 100, ["page"]) in rows


def test_a_two_x_burn_does_not_page() -> None:
    rig = Rig()
    for m in range(10):
        rig.minute(m, errors=2)
    assert rig.alerts() == []
    assert all(good == 98 for slo, good, _, _ in rig.rows() if slo == "up")


def test_sli_records_delivered_twice_count_once() -> None:
    rig = Rig()
    rig.minute(0, errors=5)
    rig.minute(1, errors=5)
    again = [m for m in rig.recorder.sent if SliCount.is_sli(m["value"])]
    assert again

    async def replay() -> None:
        for m in again:
            await rig.stage.take_in(Record("partials", m["partition"], 0, m["key"], m["value"]))

    asyncio.run(replay())
    state = json.loads(rig.tables["s"][b'"[\\"slo\\",\\"up\\"]"'])
    assert state["fine"][4] == [100, 100]  # windows 0 and 1 once each, not twice


def test_a_series_closing_after_the_slo_evaluated_its_window_rewrites_the_rows() -> None:
    rig = Rig()
    for m in range(4):
        rig.minute(m, errors=0)
    late = SliCount("up", "shop", "GET /late", 1 * 60 * S, 60 * S, 50, 50)

    async def deliver() -> None:
        await rig.stage.take_in(Record("partials", 0, 0, None, late.to_json()))

    asyncio.run(deliver())
    rig.minute(4, errors=0)
    window_1 = [r for r in rig.rows() if r[0] == "up" and r[2] == 150]
    assert window_1 == [("up", 150, 150, [])]  # window 1 again, with the late series' 50


def _three_windows_counted(now: list[float]) -> tuple[Rig, SloStage]:
    """A stage on a settable clock (``now[0]`` seconds) holding counts of windows 0-2."""
    rig = Rig()
    stage = SloStage(
        slos=SLOS, window_ns=60 * S, table=rig.slo.table, store=rig.recorder,  # type: ignore[arg-type]
        partials=rig.recorder, alerts=rig.recorder, partitions=6, clock=lambda: now[0],
    )  # fmt: skip
    for m in range(3):
        stage.take_in(SliCount("up", "shop", "GET /", m * 60 * S, 60 * S, 10, 10))
    return rig, stage


def test_without_a_watermark_for_a_while_the_windows_with_counts_are_evaluated() -> None:
    """After a restart with the traffic stopped nothing moves the watermark; the last
    windows must still get their rows (and their alerts resolve)."""
    now = [0.0]
    rig, stage = _three_windows_counted(now)
    asyncio.run(stage.evaluate(None))
    assert rig.rows() == []  # not yet: the watermark may just be starting up
    now[0] = 5 * 60.0
    asyncio.run(stage.evaluate(None))
    assert [r[0] for r in rig.rows()] == ["up"] * 3  # windows 0, 1 and 2


def test_windows_wait_for_newer_counts_until_the_slo_goes_quiet() -> None:
    now = [0.0]
    rig, stage = _three_windows_counted(now)
    asyncio.run(stage.evaluate(10 * 60 * S))  # the watermark is far ahead (a backlog)
    assert len(rig.rows()) == 2  # windows 0 and 1: window 2 may still get counts
    now[0] = 5 * 60.0  # no count for 5 windows' time: the traffic stopped
    asyncio.run(stage.evaluate(10 * 60 * S))
    assert len(rig.rows()) == 10  # through window 9, empty ones included
