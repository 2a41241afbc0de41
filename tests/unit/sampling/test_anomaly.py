"""Anomaly policy: flagged operations keep every trace touching them, until the flag ends."""

from __future__ import annotations

import pytest

from pipeline.sampling.anomaly import AnomalyFlags, AnomalyPolicy
from pipeline.sampling.policy import Decision
from tests.unit.sampling.spans import span, trace_of

K, D = Decision.KEEP, Decision.DROP
FLAGS = [("pay", "POST /pay", 1000)]


@pytest.mark.parametrize(
    ("flags", "trace_spans", "expected"),
    [
        ([], [span(service="pay", operation="POST /pay")], D),
        (FLAGS, [], D),
        (FLAGS, [span(service="pay", operation="POST /pay", start_ns=500)], K),
        (FLAGS, [span(service="pay", operation="POST /pay", start_ns=1000)], K),
        (FLAGS, [span(service="pay", operation="POST /pay", start_ns=1001)], D),  # expired
        (FLAGS, [span(service="pay", operation="GET /pay", start_ns=5)], D),  # other op
        (FLAGS, [span(service="web", operation="POST /pay", start_ns=5)], D),  # other service
        # Touching the flagged operation anywhere in the trace is enough.
        (
            FLAGS,
            [
                span(span_id="r", service="web", operation="GET /", start_ns=5),
                span(span_id="c", parent="r", service="pay", operation="POST /pay", start_ns=6),
            ],
            K,
        ),
    ],
)
def test_anomaly_policy(
    flags: list[tuple[str, str, int]], trace_spans: list, expected: Decision
) -> None:
    store = AnomalyFlags()
    for service, op, until in flags:
        store.flag(service, op, until)
    assert AnomalyPolicy(store).evaluate(trace_of(*trace_spans)) is expected


def test_reflagging_only_extends() -> None:
    flags = AnomalyFlags()
    flags.flag("pay", "op", 2000)
    flags.flag("pay", "op", 1000)
    assert flags.matches("pay", "op", 1500)


def test_prune_forgets_ended_flags_only() -> None:
    flags = AnomalyFlags()
    flags.flag("a", "op", 100)
    flags.flag("b", "op", 300)
    assert flags.prune(now_ns=200) == 1
    assert (len(flags), flags.matches("b", "op", 250)) == (1, True)


def test_bounded_evicts_soonest_ending() -> None:
    flags = AnomalyFlags(max_flags=2)
    flags.flag("a", "op", 300)
    flags.flag("b", "op", 100)
    flags.flag("c", "op", 200)
    assert len(flags) == 2
    assert not flags.matches("b", "op", 0)
    assert flags.matches("a", "op", 0) and flags.matches("c", "op", 0)
