"""The watermark policy on its own: arrivals and holds in, global and series watermarks out.

Each case is a script of steps on a fresh :class:`Watermark` (idle 10 s, no
startup hold unless the case sets one) and the watermarks expected after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pipeline.clock import ManualClock
from pipeline.windows.hold import Hold
from pipeline.windows.watermark import Arrival, Watermark

NS = 1_000_000_000
Step = tuple[str, ...] | tuple[str, int] | tuple[str, str, int, int, int, int]


def seen(
    key: str, source: int, cut: int, window_s: int, event_s: int
) -> tuple[str, str, int, int, int, int]:
    """Series ``key`` heard from ``source``, cut ``cut``: window start, max event time (s)."""
    return ("seen", key, source, cut, window_s, event_s)


def wait(seconds: int) -> tuple[str, int]:
    return ("wait", seconds)


def hold(source: int) -> tuple[str, int]:
    return ("hold", source)


@dataclass
class Case:
    steps: list[Step]
    #: the global watermark in seconds after the steps (None: none yet)
    global_s: int | None
    #: series key -> its watermark in seconds after the steps
    series_s: dict[str, int | None] = field(default_factory=dict)
    startup_hold: float = 0
    known: frozenset[str] = frozenset()


CASES = {
    # Rule 1: one cut vouches for its lowest window start only.
    "first-cut": Case([seen("a", 0, 1, 0, 95), seen("a", 0, 1, 60, 95)], 0, {"a": 0}),
    # Rule 1: a later cut makes the earlier cut's max event time count.
    "second-cut": Case([seen("a", 0, 1, 0, 50), seen("a", 0, 2, 60, 95)], 50, {"a": 50}),
    # Rule 2: the lagging source holds the global watermark.
    "min-of-sources": Case(
        [
            seen("a", 0, 1, 0, 10),
            seen("a", 0, 2, 0, 90),
            seen("a", 1, 1, 0, 5),
            seen("a", 1, 2, 0, 20),
        ],
        5,
    ),
    # Rule 3: a source silent for idle_close_seconds at wall-clock pace stops holding.
    "quiet-source": Case(
        [
            seen("a", 0, 1, 0, 5),
            seen("a", 1, 1, 0, 5),
            seen("a", 1, 2, 0, 6),
            wait(6),
            seen("a", 1, 3, 0, 12),
            wait(5),
            seen("a", 1, 4, 0, 17),
        ],
        12,
    ),
    # Rule 3: in a backlog (event time runs ahead of the wall clock) silence holds on.
    "backlog-holds": Case(
        [
            seen("a", 0, 1, 0, 5),
            seen("a", 1, 1, 0, 5),
            seen("a", 1, 2, 0, 6),
            wait(6),
            seen("a", 1, 3, 0, 500),
            wait(5),
            seen("a", 1, 4, 0, 900),
        ],
        0,
    ),
    # Rule 4: source 0 unheard of while source 1 is known: the watermark stays put.
    "dense-sources": Case([seen("a", 1, 1, 0, 50), seen("a", 1, 2, 0, 90)], None),
    # Rule 5: everything idle: the last event time plus the wall clock since.
    "stopped": Case([seen("a", 0, 1, 0, 95), wait(60)], 155),
    # Rule 6: a series' channel from a source vouches for the window start it reached.
    "channel": Case(
        [
            seen("a", 0, 1, 0, 200),
            seen("b", 0, 1, 0, 200),
            seen("b", 0, 1, 120, 200),
            seen("a", 0, 2, 0, 300),
        ],
        200,
        {"a": 200, "b": 120},
        known=frozenset({"a", "b"}),
    ),
    # Rule 6: an unknown series has no watermark (nothing of it can be late).
    "new-series": Case([seen("a", 0, 1, 0, 50), seen("a", 0, 2, 0, 90)], 50, {"z": None}),
    # Rule 7: no watermark within the startup hold.
    "startup-hold": Case(
        [seen("a", 0, 1, 0, 50), seen("a", 0, 2, 0, 90), wait(3)], None, startup_hold=5
    ),
    "startup-hold-over": Case(
        [seen("a", 0, 1, 0, 50), seen("a", 0, 2, 0, 90), wait(5)], 50, startup_hold=5
    ),
    # Rule 8: a held source is not quiet and keeps the stream from counting as stopped.
    "held": Case([seen("a", 0, 1, 0, 95), wait(9), hold(0), wait(9)], 0),
    "not-held": Case([seen("a", 0, 1, 0, 95), wait(18)], 113),
}


def run(case: Case) -> tuple[int | None, dict[str, int | None]]:
    clock = ManualClock(1_000.0)
    wm = Watermark(clock, idle_close_seconds=10, startup_hold_seconds=case.startup_hold)
    for step in case.steps:
        if step[0] == "wait":
            clock.advance(step[1])
        elif step[0] == "hold":
            wm.hold(Hold(int(step[1])))
        else:
            _, key, source, cut, window_s, event_s = step
            wm.observe(
                str(key), Arrival(int(source), int(cut), int(window_s) * NS, int(event_s) * NS)
            )
    global_ns = wm.global_ns()
    series = {key: wm.series_ns(key, key in case.known) for key in case.series_s}
    return (
        None if global_ns is None else global_ns // NS,
        {k: None if v is None else v // NS for k, v in series.items()},
    )


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_watermark_rules(case: Case) -> None:
    assert run(case) == (case.global_s, case.series_s)


def test_the_watermarks_never_go_backwards() -> None:
    clock = ManualClock(1_000.0)
    wm = Watermark(clock, idle_close_seconds=10, startup_hold_seconds=0)
    wm.observe("a", Arrival(0, 1, 0, 100 * NS))
    clock.advance(20)
    assert wm.global_ns() == 120 * NS  # stopped: flows with the wall clock
    assert wm.series_ns("a", known=True) == 120 * NS
    wm.observe("a", Arrival(0, 2, 0, 30 * NS))  # a slower cut arrives
    assert wm.global_ns() == 120 * NS
    assert wm.series_ns("a", known=True) == 120 * NS


def test_recovered_series_close_after_a_restart_without_partials() -> None:
    """Rule 9: the highest open window start plus the time since the recovery."""
    clock = ManualClock(1_000.0)
    wm = Watermark(
        clock, idle_close_seconds=10, startup_hold_seconds=5, open_window_starts=lambda: [60 * NS]
    )
    wm.reloaded(set(), {"a"})
    clock.advance(14)
    assert wm.global_ns() is None
    clock.advance(1)
    assert wm.global_ns() == 75 * NS


def test_a_series_taken_over_by_a_reload_starts_over() -> None:
    """Rule 7: its partials may be queued behind a dead stage: no watermark for the hold."""
    clock = ManualClock(1_000.0)
    wm = Watermark(clock, idle_close_seconds=10, startup_hold_seconds=5)
    wm.observe("a", Arrival(0, 1, 0, 50 * NS))
    wm.observe("a", Arrival(0, 2, 0, 90 * NS))
    clock.advance(6)
    assert wm.series_ns("b", known=True) == 50 * NS  # loaded, never seen: the global one
    wm.reloaded(set(), {"b"})
    assert wm.series_ns("b", known=True) is None
    clock.advance(5)
    assert wm.series_ns("b", known=True) == wm.global_ns() == 101 * NS  # stopped: 90 s + 11 s


def test_a_lane_vouches_for_the_sources_a_series_has_no_channel_from() -> None:
    """Rule 10: series b (lane 1) has heard only source 0; source 1's lane 1 holds it."""
    clock = ManualClock(1_000.0)
    wm = Watermark(clock, idle_close_seconds=10, startup_hold_seconds=0)
    for source in (0, 1):
        wm.observe("a", Arrival(source, 1, 0, 50 * NS), lane=0)
        wm.observe("a", Arrival(source, 2, 0, 90 * NS), lane=0)
    wm.observe("b", Arrival(0, 1, 0, 50 * NS), lane=1)
    wm.observe("b", Arrival(0, 2, 60 * NS, 90 * NS), lane=1)
    assert wm.global_ns() == 50 * NS
    assert wm.series_ns("a", known=True) == 50 * NS
    assert wm.series_ns("b", known=True) is None  # source 1 unheard of on lane 1
    wm.observe("c", Arrival(1, 2, 0, 90 * NS), lane=1)  # source 1's cut 2 on lane 1
    assert wm.series_ns("b", known=True) is None  # its first cut there vouches nothing
    wm.observe("c", Arrival(1, 3, 0, 95 * NS), lane=1)
    assert wm.series_ns("b", known=True) == 50 * NS  # cut 2 is in: b holds no more


def test_a_quiet_lane_stops_holding() -> None:
    """Rule 10 with rule 3: a source that never sends down a lane holds it only a while."""
    clock = ManualClock(1_000.0)
    wm = Watermark(clock, idle_close_seconds=10, startup_hold_seconds=0)
    for step in range(1, 13):  # live pace: one second of stream per second
        wm.observe("a", Arrival(0, step, 0, step * NS), lane=0)
        wm.observe("a", Arrival(1, step, 0, step * NS), lane=0)
        wm.observe("b", Arrival(0, step, 0, step * NS), lane=1)
        if step < 11:
            assert wm.series_ns("b", known=True) is None, step  # source 1 unheard on lane 1
        clock.advance(1)
    assert wm.series_ns("b", known=True) == 11 * NS


@pytest.mark.parametrize("queued", [False, True])
def test_while_partials_are_queued_nothing_is_quiet_and_the_stream_has_not_stopped(
    queued: bool,
) -> None:
    """Rule 11: the ingest read its backlog long ago and the fastest partials partition
    is drained (the frontier stands still), while series b's partials still wait."""
    clock = ManualClock(1_000.0)
    wm = Watermark(
        clock, idle_close_seconds=10, startup_hold_seconds=0, partials_queued=lambda: queued
    )
    for source in (0, 1):
        wm.observe("a", Arrival(source, 1, 0, 50 * NS), lane=0)
        wm.observe("a", Arrival(source, 2, 0, 900 * NS), lane=0)
        wm.observe("b", Arrival(source, 1, 0, 50 * NS), lane=1)
    clock.advance(30)
    for source in (0, 1):  # lane 0 is drained to the end: the frontier stands still
        wm.observe("a", Arrival(source, 3, 0, 900 * NS), lane=0)
    clock.advance(15)
    if queued:
        assert wm.series_ns("b", known=True) == 0  # b's channels hold it: its partials wait
    else:
        assert wm.series_ns("b", known=True) >= 900 * NS  # quiet: the stream has stopped
    clock.advance(60)
    assert (wm.global_ns() == 900 * NS) is queued  # rule 5 waits while partials queue
