"""Per-window signals: self time, originating errors and edges from whole traces."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline.incidents.signals import OpKey, SignalAccumulator, merge_ops, self_time_ns


def span(sid: str, parent: str, svc: str, start: int, dur: int, err: bool = False) -> SimpleNamespace:
    return SimpleNamespace(span_id=sid, parent_span_id=parent, service_name=svc,
                           operation=sid, timestamp_ns=start, duration_ns=dur, is_error=err)  # fmt: skip


@pytest.mark.parametrize(
    ("children", "expected"),
    [
        ([], 100),
        ([(10, 20), (40, 20)], 60),  # sequential
        ([(10, 50), (20, 50)], 40),  # overlapping (parallel calls)
        ([(90, 50)], 90),  # a child running past its parent is clipped
        ([(-20, 30)], 90),
    ],
)
def test_self_time(children: list[tuple[int, int]], expected: int) -> None:
    kids = [span(f"k{i}", "p", "s", start, dur) for i, (start, dur) in enumerate(children)]
    assert self_time_ns(span("p", "", "s", 0, 100), kids) == expected


def test_errors_originate_where_no_child_failed_and_windows_split() -> None:
    acc = SignalAccumulator(window_ns=100)
    acc.add_trace([span("a", "", "web", 0, 50, True), span("b", "a", "db", 10, 10, True)])
    acc.add_trace([span("c", "", "web", 120, 50, True), span("d", "c", "db", 130, 10)])
    first, second = acc.pop(0), acc.pop(100)
    assert first.ops[OpKey("web", "a")].origin_errors == 0
    assert first.ops[OpKey("db", "b")].origin_errors == 1
    assert second.ops[OpKey("web", "c")].origin_errors == 1
    assert first.edges[("web", "db")].errors == 1 and second.edges[("web", "db")].errors == 0
    assert acc.windows() == [] and merge_ops([first, second])[OpKey("web", "a")].calls == 1
