"""derive: edges and self time of one trace, table-driven over the connector's rules."""

from __future__ import annotations

import pytest

from pipeline.graph.derive import (
    CLIENT,
    CONSUMER,
    INTERNAL,
    PRODUCER,
    SERVER,
    GraphSpan,
    covered_ns,
    derive,
)


def sp(
    sid: str,
    parent: str,
    service: str,
    kind: int,
    start: int,
    dur: int,
    err: bool = False,
    peer: str = "",
    db: bool = False,
    op: str = "",
) -> GraphSpan:
    return GraphSpan(sid, parent, service, op or sid, kind, start, dur, err, peer, db)


Edge = tuple[str, int | None, int | None, bool]


def edges(spans: list[GraphSpan]) -> list[Edge]:
    return [(c.key.label(), c.client_ns, c.server_ns, c.failed) for c in derive(spans).calls]


ROOT = sp("r", "", "front", SERVER, 0, 100)
USER_FRONT = ("user->front (virtual_node)", None, 100, False)

CASES = {
    "client/server pair": (
        [ROOT, sp("c", "r", "front", CLIENT, 10, 50), sp("s", "c", "pay", SERVER, 12, 40)],
        [("front->pay", 50, 40, False), USER_FRONT],
    ),
    "server error fails the call": (
        [ROOT, sp("c", "r", "front", CLIENT, 10, 50), sp("s", "c", "pay", SERVER, 12, 40, True)],
        [("front->pay", 50, 40, True), USER_FRONT],
    ),
    "client error fails the call": (
        [ROOT, sp("c", "r", "front", CLIENT, 10, 50, True), sp("s", "c", "pay", SERVER, 12, 4)],
        [("front->pay", 50, 4, True), USER_FRONT],
    ),
    "async producer/consumer": (
        [ROOT, sp("p", "r", "front", PRODUCER, 10, 5), sp("q", "p", "ship", CONSUMER, 500, 30)],
        [
            ("front->ship (messaging_system)", 5, 30, False),
            USER_FRONT,
        ],
    ),
    "database client": (
        [ROOT, sp("d", "r", "front", CLIENT, 10, 7, peer="postgresql", db=True)],
        [
            ("front->postgresql (database)", 7, 7, False),
            USER_FRONT,
        ],
    ),
    "uninstrumented peer": (
        [ROOT, sp("d", "r", "front", CLIENT, 10, 7, peer="stripe")],
        [
            ("front->stripe (virtual_node)", 7, None, False),
            USER_FRONT,
        ],
    ),
    "peer without a name": (
        [ROOT, sp("d", "r", "front", CLIENT, 10, 7, True)],
        [
            ("front->unknown (virtual_node)", 7, None, True),
            USER_FRONT,
        ],
    ),
    "missing parent: server unpaired, no edge": (
        [sp("s", "gone", "pay", SERVER, 12, 40)],
        [],
    ),
    "orphan child of an internal span: no edge": (
        [sp("i", "", "front", INTERNAL, 0, 9), sp("s", "i", "pay", SERVER, 1, 4)],
        [],
    ),
    "second server child of one client is unpaired": (
        [
            sp("c", "x", "front", CLIENT, 10, 50),
            sp("s1", "c", "pay", SERVER, 12, 40),
            sp("s2", "c", "pay", SERVER, 13, 30),
        ],
        [("front->pay", 50, 40, False)],
    ),
    "self-parent is a root": (
        [sp("s", "s", "pay", SERVER, 0, 4)],
        [("user->pay (virtual_node)", None, 4, False)],
    ),
    "parent cycle: no loop, no edge": (
        [sp("a", "b", "x", SERVER, 0, 4), sp("b", "a", "y", SERVER, 0, 4)],
        [],
    ),
    "client/server cycle pairs once each way": (
        [sp("a", "b", "x", CLIENT, 0, 4), sp("b", "a", "y", SERVER, 0, 3)],
        [("x->y", 4, 3, False)],
    ),
    "duplicate span ids keep the first": (
        [ROOT, sp("r", "", "other", SERVER, 0, 5)],
        [USER_FRONT],
    ),
}


@pytest.mark.parametrize("spans, expected", CASES.values(), ids=CASES.keys())
def test_edges(
    spans: list[GraphSpan], expected: list[tuple[str, int | None, int | None, bool]]
) -> None:
    assert edges(spans) == expected


def test_unpaired_and_duplicates_are_counted() -> None:
    g = derive([sp("s", "gone", "pay", SERVER, 12, 40), ROOT, sp("r", "", "x", SERVER, 0, 1)])
    assert (g.unpaired_server, g.duplicates, g.truncated) == (1, 1, 0)


def test_edges_do_not_depend_on_span_order() -> None:
    spans = CASES["async producer/consumer"][0] + [
        sp("d", "r", "front", CLIENT, 1, 2, peer="pg", db=True)
    ]
    assert derive(spans).calls == derive(list(reversed(spans))).calls


SELF_CASES = {
    "leaf": ([ROOT], {"r": 100}),
    "one child": ([ROOT, sp("c", "r", "front", CLIENT, 10, 50)], {"r": 50, "c": 50}),
    "overlapping children count once": (
        [ROOT, sp("a", "r", "f", CLIENT, 10, 40), sp("b", "r", "f", CLIENT, 30, 40)],
        {"r": 40, "a": 40, "b": 40},
    ),
    "nested-in-interval children": (
        [ROOT, sp("a", "r", "f", CLIENT, 10, 80), sp("b", "r", "f", CLIENT, 20, 10)],
        {"r": 20, "a": 80, "b": 10},
    ),
    "children clipped to the parent": (
        [ROOT, sp("a", "r", "f", CLIENT, -50, 60), sp("b", "r", "f", CLIENT, 95, 60)],
        {"r": 85, "a": 60, "b": 60},
    ),
    "async child after the parent ends": (
        [ROOT, sp("a", "r", "f", PRODUCER, 200, 10)],
        {"r": 100, "a": 10},
    ),
    "child longer than parent: self time 0": (
        [sp("p", "", "f", SERVER, 10, 5), sp("c", "p", "f", CLIENT, 0, 100)],
        {"p": 0, "c": 100},
    ),
    "negative duration counts as 0 covered": (
        [sp("p", "", "f", SERVER, 0, 10), sp("c", "p", "f", CLIENT, 5, -3)],
        {"p": 10, "c": -3},
    ),
}


@pytest.mark.parametrize("spans, expected", SELF_CASES.values(), ids=SELF_CASES.keys())
def test_self_time(spans: list[GraphSpan], expected: dict[str, int]) -> None:
    got = {s.operation: s.self_ns for s in derive(spans).self_times}
    assert got == expected


def test_error_originates_where_no_child_errs() -> None:
    spans = [
        sp("r", "", "front", SERVER, 0, 100, True),
        sp("c", "r", "front", CLIENT, 10, 50, True),
        sp("s", "c", "inv", SERVER, 12, 40, True),
        sp("d", "s", "inv", CLIENT, 13, 10, False, "pg", True),
    ]
    got = {s.operation: s.error_originated for s in derive(spans).self_times}
    assert got == {"r": False, "c": False, "s": True, "d": False}


def test_huge_fan_out_is_bounded() -> None:
    kids = [
        sp(f"k{i}", "r", "front", CLIENT, i % 100, 5, peer="pg", db=True) for i in range(50_000)
    ]
    g = derive([ROOT, *kids], max_spans=1_000)
    assert g.truncated == 50_001 - 1_000
    assert len(g.calls) == 1_000  # 999 database calls + the root's
    assert {s.operation: s.self_ns for s in g.self_times}["r"] == 0


def test_covered_ns_of_no_children_is_zero() -> None:
    assert covered_ns(ROOT, []) == 0


def test_self_times_come_in_the_spans_order_one_per_span_id() -> None:
    spans = [sp("c", "r", "f", CLIENT, 10, 5), ROOT, sp("c", "r", "x", SERVER, 0, 1)]
    assert [(s.service, s.operation) for s in derive(spans).self_times] == [
        ("f", "c"),
        ("front", "r"),
    ]
