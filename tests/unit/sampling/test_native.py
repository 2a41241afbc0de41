"""The native sampling helpers against their Python definitions, on heads and spans.

Each helper in pipeline/otlp/_sampling.h, _latency.h and _policies.h replaces a
Python loop; these tests state that loop here and compare, on generated inputs
and on the edge cases the C code treats specially (runs of one object, equal but
distinct strs, non-canonical ids, objects that are not heads).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.otlp._heads import (
    SpanHead,
    any_error,
    by_trace,
    latency_observe,
    per_service,
    representative,
    trace_hash,
)
from pipeline.sampling.latency import LatencyState
from pipeline.sampling.policy import TraceData, representative_of
from pipeline.sampling.probabilistic import fmix64, fnv1a_64, trace_id_bytes
from pipeline.sampling.sketch import DecayingHistogram
from pipeline.sampling.stats import row_bytes
from tests.unit.sampling.spans import MS, span


def head(
    trace: str = "a" * 32,
    parent: str = "",
    service: str = "api",
    operation: str = "GET /",
    duration_ns: int = 10 * MS,
    error: bool = False,
    size: int = 100,
) -> SpanHead:
    """A SpanHead with the fields sampling reads; no bytes behind it."""
    return SpanHead(
        trace, "1" * 16, parent, 0, duration_ns, service, operation, error, size, b"", 0, 0,
        None, None,
    )  # fmt: skip


def fresh(text: str) -> str:
    """An equal str that is a different object (as two decoded messages give)."""
    return "".join(list(text))


# A span as (trace, parent, service, operation, duration ns, error), built either way.
_fields = st.tuples(
    st.sampled_from(["t1", "t2", "t3"]),
    st.sampled_from(["", "p"]),
    st.sampled_from(["a", "b"]),
    st.sampled_from(["x", "y", "z"]),
    st.integers(0, 10**10),
    st.booleans(),
)


def build(fields: list[tuple[str, str, str, str, int, bool]], as_heads: bool) -> list[Any]:
    """Heads or Spans; every other span gets distinct-but-equal strs."""
    out: list[Any] = []
    for i, (t, p, s, o, d, e) in enumerate(fields):
        if i % 2:
            t, s, o = fresh(t), fresh(s), fresh(o)
        if as_heads:
            out.append(head(t, p, s, o, d, e, size=d % 997))
        else:
            out.append(span(t, parent=p, service=s, operation=o, duration_ms=d / MS, error=e))
    return out


_spans = st.builds(build, st.lists(_fields, max_size=30), st.booleans())


# --- buffer and volume counters ------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(_spans)
def test_by_trace_is_setdefault_append(spans: list[Any]) -> None:
    expected: dict[str, list[Any]] = {}
    for s in spans:
        expected.setdefault(s.trace_id, []).append(s)
    got = by_trace(spans)
    assert list(got) == list(expected)
    for trace_id, spans_of in expected.items():
        assert [id(s) for s in got[trace_id]] == [id(s) for s in spans_of]


@settings(max_examples=200, deadline=None)
@given(_spans)
def test_per_service_counts_in_first_seen_order(spans: list[Any]) -> None:
    expected: dict[str, list[int]] = {}
    for s in spans:
        entry = expected.setdefault(s.service_name, [0, 0])
        entry[0] += 1
        entry[1] += row_bytes(s)
    assert list(per_service(spans, row_bytes).items()) == list(expected.items())


def test_by_trace_and_per_service_take_any_iterable_and_report_errors() -> None:
    spans = [head("t1", service="a"), head("t2", service="b"), head("t1", service="a")]
    assert list(by_trace(iter(spans))) == ["t1", "t2"]
    with pytest.raises(AttributeError):
        by_trace([object()])
    with pytest.raises(ZeroDivisionError):
        per_service([span()], lambda _s: 1 // 0)


# --- policies ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(_spans)
def test_any_error_and_representative_match_python(spans: list[Any]) -> None:
    assert any_error(spans) is any(s.is_error for s in spans)
    assert representative(spans) is representative_of(TraceData("t", spans))


@pytest.mark.parametrize(
    ("durations", "expected"),
    [([], None), ([5], 0), ([5, 9, 9, 1], 1), ([7, 7], 0), ([1, 2**70, 2**70 + 1], 2)],
)
def test_representative_without_root_is_the_earliest_longest(
    durations: list[int], expected: int | None
) -> None:
    spans = [head(parent="p", duration_ns=d) for d in durations]
    got = representative(spans)
    assert got is (None if expected is None else spans[expected])
    assert got is representative_of(TraceData("t", spans))


def test_policy_checks_use_truthiness_of_non_heads() -> None:
    spans = [SimpleNamespace(is_error=0, parent_span_id="p", duration_ns=3)]
    spans.append(SimpleNamespace(is_error=[1], parent_span_id=(), duration_ns=1))
    assert any_error(spans) is True and any_error(spans[:1]) is False
    assert representative(spans) is spans[1]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789abcdefABCDEF", max_size=40),
        st.text(max_size=12),
        st.builds(lambda a, b: f"{a} {b}", st.text("0123456789abcdef", min_size=2, max_size=2),
                  st.text("0123456789abcdef", min_size=2, max_size=2)),
    ),
    st.binary(max_size=20),
)  # fmt: skip
def test_trace_hash_is_fmix_of_fnv_of_salt_and_id_bytes(trace_id: str, salt: bytes) -> None:
    assert trace_hash(trace_id, salt) == fmix64(fnv1a_64(salt + trace_id_bytes(trace_id)))


@pytest.mark.parametrize("trace_id", ["", "ab", "AB", "abc", "zz", "ab cd", "é0", "4bf9" * 8])
def test_trace_hash_edge_ids(trace_id: str) -> None:
    salt = b"default-hash-seed"
    assert trace_hash(trace_id, salt) == fmix64(fnv1a_64(salt + trace_id_bytes(trace_id)))


def test_trace_hash_rejects_what_the_python_definition_rejects() -> None:
    with pytest.raises(UnicodeEncodeError):
        trace_id_bytes("\ud800")
    with pytest.raises(UnicodeEncodeError):
        trace_hash("\ud800", b"")


# --- latency learning ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(_spans, min_size=1, max_size=5), st.sampled_from([4.0, 16.0, 1e4]))
def test_observe_spans_on_heads_equals_observing_one_by_one(
    traces: list[list[Any]], horizon: float
) -> None:
    grouped = LatencyState(horizon=horizon, max_bins=3)
    one_by_one = LatencyState(horizon=horizon, max_bins=3)
    for spans in traces:
        grouped.observe_spans(spans)
        for s in spans:
            one_by_one.observe(s.service_name, s.operation, s.duration_ns)
    assert grouped.to_dict() == one_by_one.to_dict()
    assert [(k, op.since_refresh) for k, op in grouped._ops.items()] == [
        (k, op.since_refresh) for k, op in one_by_one._ops.items()
    ]


class _CountingHist(DecayingHistogram):
    """A subclass whose ``count`` is a property: the native code must not use the slot."""

    __slots__ = ("_count", "reads")

    def __init__(self, *args: Any) -> None:
        self.reads = 0
        super().__init__(*args)

    @property  # type: ignore[override]
    def count(self) -> float:
        self.reads += 1
        return self._count

    @count.setter
    def count(self, value: float) -> None:
        self._count = value


def test_latency_observe_goes_through_attributes_when_they_are_not_plain_slots() -> None:
    durations = [float(d) for d in range(1, 40)]
    reference = DecayingHistogram(0.02, 8.0, 4)
    for d in durations:
        reference.add(d)
    spans = [head(duration_ns=int(d)) for d in durations]

    def plain_run() -> None:
        plain = LatencyState(horizon=8.0, max_bins=4)
        plain.observe_spans(spans)
        assert plain.to_dict()["ops"][0]["hist"] == reference.to_dict()

    def new_op() -> SimpleNamespace:  # not an _OpLatency: plain attributes
        return SimpleNamespace(hist=_CountingHist(0.02, 8.0, 4), since_refresh=0)

    # The plain classes before and after: what was resolved for them must not be
    # applied to the subclass, nor the subclass's to them.
    plain_run()
    ops: OrderedDict[Any, Any] = OrderedDict()
    latency_observe(ops, spans, new_op)
    (op,) = ops.values()
    assert op.since_refresh == len(durations)
    assert op.hist.to_dict() == reference.to_dict() and op.hist.count == reference.count
    assert op.hist.reads > 0
    plain_run()


def test_add_many_on_ints_and_overflow_matches_add() -> None:
    many, one = DecayingHistogram(0.02, 6.0, 3), DecayingHistogram(0.02, 6.0, 3)
    values: list[Any] = [0, 1, 2**53 + 1, 10**12, 3, 7, 7, 7, 0.5]
    many.add_many(values)
    for v in values:
        one.add(float(v))
    assert many.to_dict() == one.to_dict() and many.count == one.count
    with pytest.raises(OverflowError):
        math.log(float(10**400))
    with pytest.raises(OverflowError):
        DecayingHistogram().add_many([10**400])
