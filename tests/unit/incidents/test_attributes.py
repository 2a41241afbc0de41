"""Attribute over-representation among abnormal spans."""

from __future__ import annotations

import pytest

from pipeline.incidents.attributes import over_represented


def spans(abnormal: dict[str, int], normal: dict[str, int], key: str = "k8s.pod.name"):  # type: ignore[no-untyped-def]
    out = [({key: v}, True) for v, n in abnormal.items() for _ in range(n)]
    return out + [({key: v}, False) for v, n in normal.items() for _ in range(n)]


@pytest.mark.parametrize(
    ("abnormal", "normal", "named"),
    [
        ({"p1": 20}, {"p1": 10, "p2": 10, "p3": 10, "p4": 10}, ["p1"]),  # one pod
        ({"p1": 10, "p2": 10}, {"p1": 10, "p2": 10, "p3": 10, "p4": 10}, []),  # half: none
        ({"p1": 4}, {"p2": 10}, []),  # too few abnormal spans
        ({"p1": 20}, {"p1": 50}, []),  # everything is on p1: no lift
    ],
)
def test_named_only_when_over_represented(
    abnormal: dict[str, int], normal: dict[str, int], named: list[str]
) -> None:
    assert [n.value for n in over_represented(spans(abnormal, normal))] == named


def test_shares_count_only_spans_that_carry_the_attribute() -> None:
    data = [({"http.response.status_code": 200}, True)] * 10
    data += [({"http.response.status_code": 200}, False)] * 10 + [({}, False)] * 30
    assert over_represented(data) == []
