"""Every native function (pipeline.native) against its Python definition, case by case.

The door: only pipeline/native.py imports the extension, and every function the
extension exports is a port with a reference. Then, per port, the native function and
its reference on generated inputs and on the edge cases the C code treats specially
(runs of one object, equal but distinct strs, non-canonical ids, odd ints, damaged
bytes). ``valid`` is held to upb; ``scan`` and ``columns`` to the
pre-scan decoder in tests/unit/otlp/test_heads.py.
"""

from __future__ import annotations

import ast
import math
import os
import random
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from pipeline import native
from pipeline.enrich import DERIVE_ATTRIBUTES, Enricher, http_server_error, operation_for
from pipeline.errors import DecodeError
from pipeline.graph.histogram import sketch_counts_of
from pipeline.graph.read import _NEEDLES as _PEER_NEEDLES
from pipeline.graph.read import peer_in_span_of
from pipeline.model import SpanHead
from pipeline.otlp.decode import decode_message
from pipeline.otlp.heads import head_buffers, head_columns
from pipeline.otlp.otlp_proto import parse_request, upb_accepts
from pipeline.otlp.samples import deep_proto_request, key_values, proto_request, proto_span
from pipeline.sampling.counters import per_service_of
from pipeline.sampling.decaying_histogram import DecayingHistogram
from pipeline.sampling.latency import LatencyState, latency_observe_of
from pipeline.sampling.probabilistic import trace_hash_of
from pipeline.sinks.clickhouse import TRACE_COLUMNS, arrow_columns_of, columns_of
from pipeline.store.arrow import from_layout
from pipeline.windows.latency_sketch import DEFAULT_MAX_BINS
from pipeline.windows.partial import (
    _SKETCH_INV_LOG_GAMMA,
    PartialAggregator,
    window_add_of,
    window_start_ns,
)
from pipeline.windows.red_stats import WindowStats
from tests.unit.otlp.equivalence import assert_equivalent
from tests.unit.otlp.test_heads import EDGE_SPANS, _field, _wrap_span, generated
from tests.unit.sampling.spans import MS, span
from tests.unit.windows.conftest import make_span
from tests.unit.windows.test_partial import record_spans

ROOT = Path(__file__).resolve().parents[2]
needs_extension = pytest.mark.skipif(
    not native.ENABLED, reason="the C extension is not built or SPANSTREAM_NATIVE=0"
)


# --- the door ------------------------------------------------------------------------------


def _imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_only_the_door_imports_the_extension() -> None:
    importers = [
        path.relative_to(ROOT).as_posix()
        for tree in ("pipeline", "tests")
        for path in sorted((ROOT / tree).rglob("*.py"))
        if "pipeline.otlp._heads" in _imports_of(path)
    ]
    assert importers == ["pipeline/native.py"]


@needs_extension
def test_every_extension_function_is_a_port_with_a_reference() -> None:
    exported = native.exported()
    assert exported - {"configure"} == {p.name for p in native.PORTS}
    for port in native.PORTS:
        assert callable(native.reference(port.name))
        assert getattr(native, port.name) is native.native(port.name), port.name


def test_without_the_extension_every_port_runs_its_reference() -> None:
    """``SPANSTREAM_NATIVE=0``: decode, sample, window and store rows in Python alone."""
    script = (
        "from pipeline import native\n"
        "from pipeline.model import SpanHead\n"
        "from pipeline.otlp.samples import proto_request, proto_span\n"
        "from pipeline.otlp.decode import decode_message\n"
        "from pipeline.enrich import Enricher\n"
        "from pipeline.sinks.clickhouse import trace_arrays, trace_columns\n"
        "from pipeline.windows.partial import PartialAggregator\n"
        "assert not native.ENABLED and native.SpanHead is SpanHead\n"
        "value = proto_request([proto_span(), proto_span(span_id=b'2' * 8)]).SerializeToString()\n"
        "heads = decode_message(value, None, max_bytes=10**6, enricher=Enricher()).spans\n"
        "agg = PartialAggregator(60, 0)\n"
        "agg.add_record(heads, 0)\n"
        "assert [p.requests for p in agg.cut()] == [2]\n"
        "assert len(trace_columns(heads)['SpanId']) == len(trace_arrays(heads)['SpanId']) == 2\n"
        "print('ok')\n"
    )
    env = {**os.environ, "SPANSTREAM_NATIVE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


class _Recording(dict[str, str]):
    """Attributes that note every key looked up."""

    def __init__(self, data: dict[str, str], seen: set[str]) -> None:
        super().__init__(data)
        self.seen = seen

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.seen.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.seen.add(str(key))
        return super().__contains__(key)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*DERIVE_ATTRIBUTES, "other", "http.request.header"]),
        st.sampled_from(["", "GET", "503", "/a/1", "https://x/y", "grpc", "svc"]),
    )
)
def test_derive_reads_only_the_declared_attributes(attributes: dict[str, str]) -> None:
    """The native memo keys on DERIVE_ATTRIBUTES: the enricher may read nothing else."""
    seen: set[str] = set()
    operation_for("GET /x", _Recording(attributes, seen))
    http_server_error(_Recording(attributes, seen))
    assert seen <= set(DERIVE_ATTRIBUTES)


# --- sampling ------------------------------------------------------------------------------


def head(
    trace: str = "a" * 32,
    parent: str = "",
    service: str = "api",
    operation: str = "GET /",
    duration_ns: int = 10 * MS,
    error: bool = False,
    size: int = 100,
) -> SpanHead:
    """A head with the fields sampling reads; no bytes behind it."""
    return native.SpanHead(
        trace, "1" * 16, parent, 0, duration_ns, service, operation, error, size, b"", 0, 0,
        None, None,
    )  # fmt: skip


def fresh(text: str) -> str:
    """An equal str that is a different object (as two decoded messages give)."""
    return "".join(list(text))


# A span as (trace, parent, service, operation, duration ns, error).
_fields = st.tuples(
    st.sampled_from(["t1", "t2", "t3"]),
    st.sampled_from(["", "p"]),
    st.sampled_from(["a", "b"]),
    st.sampled_from(["x", "y", "z"]),
    st.integers(0, 10**10),
    st.booleans(),
)


def build(fields: list[tuple[str, str, str, str, int, bool]], direct: bool) -> list[SpanHead]:
    """Heads made directly or from a built Span; every other one with distinct-but-equal strs."""
    out: list[SpanHead] = []
    for i, (t, p, s, o, d, e) in enumerate(fields):
        if i % 2:
            t, s, o = fresh(t), fresh(s), fresh(o)
        if direct:
            out.append(head(t, p, s, o, d, e, size=d % 997))
        else:
            out.append(span(t, parent=p, service=s, operation=o, duration_ms=d / MS, error=e))
    return out


_spans = st.builds(build, st.lists(_fields, max_size=30), st.booleans())


@settings(max_examples=200, deadline=None)
@given(_spans)
def test_per_service(spans: list[SpanHead]) -> None:
    assert list(native.per_service(spans).items()) == list(per_service_of(spans).items())


@needs_extension
def test_per_service_takes_heads_only() -> None:
    built = span()
    assert built.span is not None
    with pytest.raises(TypeError, match="SpanHead"):
        native.per_service([built.span, head()])


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
def test_trace_hash(trace_id: str, salt: bytes) -> None:
    assert native.trace_hash(trace_id, salt) == trace_hash_of(trace_id, salt)


@pytest.mark.parametrize("trace_id", ["", "ab", "AB", "abc", "zz", "ab cd", "é0", "4bf9" * 8])
def test_trace_hash_edge_ids(trace_id: str) -> None:
    salt = b"default-hash-seed"
    assert native.trace_hash(trace_id, salt) == trace_hash_of(trace_id, salt)


def test_trace_hash_rejects_what_the_python_definition_rejects() -> None:
    with pytest.raises(UnicodeEncodeError):
        trace_hash_of("\ud800", b"")
    with pytest.raises(UnicodeEncodeError):
        native.trace_hash("\ud800", b"")


def _learnt(observe: Any, traces: list[list[SpanHead]], horizon: float) -> Any:
    state = LatencyState(horizon=horizon, max_bins=3)
    for spans in traces:
        observe(state._ops, spans, state._new_op, state._inv_log_gamma, 3, horizon)
    return state.to_dict(), [(k, op.since_refresh) for k, op in state._ops.items()]


@settings(max_examples=200, deadline=None)
@given(st.lists(_spans, min_size=1, max_size=5), st.sampled_from([4.0, 16.0, 1e4]))
def test_latency_observe(traces: list[list[SpanHead]], horizon: float) -> None:
    got = _learnt(native.latency_observe, traces, horizon)
    assert got == _learnt(latency_observe_of, traces, horizon)


def test_latency_observe_goes_through_the_attribute_protocol() -> None:
    """Ops and histograms are read by attribute: any object with them works alike."""

    class Counting(DecayingHistogram):
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

    spans = [head(duration_ns=d) for d in range(1, 40)]
    inv = 1.0 / math.log(1.02 / 0.98)
    learnt = []
    for observe in (native.latency_observe, latency_observe_of):
        ops: OrderedDict[Any, Any] = OrderedDict()
        observe(
            ops,
            spans,
            lambda: SimpleNamespace(hist=Counting(0.02, 8.0, 4), since_refresh=0),
            inv,
            4,
            8.0,
        )
        (op,) = ops.values()
        assert op.hist.reads > 0
        learnt.append((op.hist.to_dict(), op.hist.count, op.since_refresh))
    assert learnt[0] == learnt[1]


@settings(max_examples=200, deadline=None)
@given(st.lists(_spans, min_size=1, max_size=5), st.sampled_from([4.0, 16.0, 1e4]))
def test_observe_spans_equals_observing_one_by_one(
    traces: list[list[SpanHead]], horizon: float
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


# --- windows -------------------------------------------------------------------------------

NS = 1_000_000_000


def _accumulated(
    add: Any,
    records: list[list[SpanHead]],
    max_exemplars: int,
    cap: int | None = None,
    thresholds: dict[str, tuple[int, ...]] | None = None,
) -> tuple[Any, ...]:
    accs: dict[tuple[str, str, int], Any] = {}
    mark = None
    for spans in records:
        mark = add(spans, accs, 60 * NS, cap, mark, max_exemplars, _SKETCH_INV_LOG_GAMMA,
                   DEFAULT_MAX_BINS, thresholds)  # fmt: skip
    fields = ("requests", "errors", "zeros", "max_ns", "bins", "min", "max", "exemplars", "under")
    return mark, {key: tuple(getattr(a, f) for f in fields) for key, a in accs.items()}


@settings(max_examples=300, deadline=None)
@given(st.lists(record_spans, min_size=1, max_size=8), st.integers(1, 3), st.booleans())
def test_window_add(
    records: list[list[tuple[str, float, float, bool, str]]], max_exemplars: int, capped: bool
) -> None:
    heads = [
        [make_span(ts, ms, error=e, operation=op, trace=t) for op, ts, ms, e, t in record]
        for record in records
    ]
    cap = 40 * NS if capped else None
    got = _accumulated(native.window_add, heads, max_exemplars, cap)
    assert got == _accumulated(window_add_of, heads, max_exemplars, cap)


_limits = st.lists(st.integers(0, 2**62), max_size=4).map(tuple)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(record_spans, min_size=1, max_size=6),
    st.dictionaries(st.sampled_from(["shop", "cart", "x"]), _limits, max_size=3),
)
def test_window_add_counts_under_thresholds_like_python(
    records: list[list[tuple[str, float, float, bool, str]]], thresholds: dict[str, tuple[int, ...]]
) -> None:
    heads = [
        [make_span(ts, ms, error=e, operation=op, trace=t,
                   service="shop" if len(op) % 2 else "cart") for op, ts, ms, e, t in record]
        for record in records
    ]  # fmt: skip
    got = _accumulated(native.window_add, heads, 2, None, thresholds)
    assert got == _accumulated(window_add_of, heads, 2, None, thresholds)


@needs_extension
def test_window_add_refuses_thresholds_python_could_not_hold() -> None:
    spans = [make_span(1, 5)]
    args = (60 * NS, None, None, 3, _SKETCH_INV_LOG_GAMMA, DEFAULT_MAX_BINS)
    with pytest.raises(TypeError):
        native.window_add(spans, {}, *args, [("shop", (1,))])
    with pytest.raises(OverflowError):
        native.window_add(spans, {}, *args, {"shop": (2**64,)})
    with pytest.raises(TypeError):
        native.window_add(spans, {}, *args, {"shop": 5})


# Python ints of any size reach the aggregator: a broken clock must count, not fail.
_odd_ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63)]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_odd_ints, _odd_ints, st.booleans()), min_size=1, max_size=10))
def test_window_add_on_any_int(spans: list[tuple[int, int, bool]]) -> None:
    heads = [
        native.SpanHead(f"{i % 3:032x}", "1" * 16, "", ts, d, "shop", "GET /", e, 0, b"", 0, 0,
                        None, None)
        for i, (ts, d, e) in enumerate(spans)
    ]  # fmt: skip
    assert _accumulated(native.window_add, [heads], 2) == _accumulated(window_add_of, [heads], 2)
    limits = {"shop": (0, 1, 2**53, 2**63 - 1)}
    got = _accumulated(native.window_add, [heads], 2, None, limits)
    assert got == _accumulated(window_add_of, [heads], 2, None, limits)


def test_window_add_folds_a_sketch_over_its_bucket_bound_like_python() -> None:
    # 2,100 durations a factor 1.05 apart: more buckets than DEFAULT_MAX_BINS (2,048).
    every = [make_span(1, 1e-6 * 1.05**i, trace=f"{i:032x}") for i in range(2100)]
    got = _accumulated(native.window_add, [every], 3)
    assert got == _accumulated(window_add_of, [every], 3)
    aggregator = PartialAggregator(60, 0)
    aggregator.add_record(every, 0)
    (partial,) = aggregator.cut()
    assert len(partial.sketch.to_dict()["k"]) == DEFAULT_MAX_BINS


def test_window_add_is_window_stats_add_span_by_span() -> None:
    """The reference itself, against the definition of a window's counts."""
    spans = [make_span(ts, ms, error=ms > 100) for ts, ms in [(1, 5), (2, 500), (61, 0)]]
    accs: dict[tuple[str, str, int], Any] = {}
    window_add_of(spans, accs, 60 * NS, None, None, 3, _SKETCH_INV_LOG_GAMMA, DEFAULT_MAX_BINS)
    for s in spans:
        stats = WindowStats(3)
        for other in spans:
            if window_start_ns(other.timestamp_ns, 60 * NS) == window_start_ns(
                s.timestamp_ns, 60 * NS
            ):
                stats.add(max(other.duration_ns, 0), other.is_error, other.trace_id)
        acc = accs[(s.service_name, s.operation, window_start_ns(s.timestamp_ns, 60 * NS))]
        assert (acc.requests, acc.errors, acc.exemplars) == (
            stats.requests,
            stats.errors,
            stats.exemplars,
        )


# --- decoding: valid (held to upb), scan, fields, columns (held to the Python decoder) -----

MARK = "QQQQ"  # replaced on the wire by four bytes of the same length


def _every_string_field() -> bytes:
    """A request with MARK in every string field of the schema, each field once."""
    span = proto_span(
        name=MARK + "n",
        trace_state=MARK + "t",
        attributes={MARK + "k": MARK + "v", "list": [MARK + "a"], "map": {"k": MARK + "m"}},
        status=Status(code=Status.STATUS_CODE_ERROR, message=MARK + "s"),
    )
    span.events.add(time_unix_nano=1, name=MARK + "e", attributes=key_values({"k": MARK + "ea"}))
    span.links.add(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        trace_state=MARK + "lt",
        attributes=key_values({"k": MARK + "la"}),
    )
    request = proto_request([span], resource={"service.name": MARK + "svc"})
    request.resource_spans[0].schema_url = MARK + "rs"
    scope_spans = request.resource_spans[0].scope_spans[0]
    scope_spans.schema_url = MARK + "ss"
    scope_spans.scope.name, scope_spans.scope.version = MARK + "sn", MARK + "sv"
    scope_spans.scope.attributes.extend(key_values({"k": MARK + "sa"}))
    return request.SerializeToString()


def test_valid_on_ordinary_traffic_takes_the_shortcut() -> None:
    values = generated(5, 200) + generated(6, 50, batch_traces=5) + [_every_string_field()]
    assert all(native.valid(v) for v in values)
    assert all(upb_accepts(v) for v in values)


@pytest.mark.parametrize("occurrence", range(_every_string_field().count(MARK.encode())))
def test_bad_utf8_in_any_string_field_is_left_to_upb(occurrence: int) -> None:
    value = _every_string_field()
    at = -1
    for _ in range(occurrence + 1):
        at = value.index(MARK.encode(), at + 1)
    broken = value[:at] + b"\xc3\x28QQ" + value[at + 4 :]
    assert not native.valid(broken)
    with pytest.raises(DecodeError) as caught:
        parse_request(broken)
    assert caught.value.reason == "bad_utf8"
    assert not upb_accepts(broken)


@pytest.mark.parametrize(
    "text",
    [
        b"ascii",
        b"\xc2\x80",  # U+0080, the smallest two-byte form
        b"\xdf\xbf",
        b"\xe0\xa0\x80",  # U+0800
        b"\xed\x9f\xbf",  # U+D7FF, just below the surrogates
        b"\xee\x80\x80",
        b"\xef\xbf\xbf",  # U+FFFF
        b"\xf0\x90\x80\x80",  # U+10000
        b"\xf4\x8f\xbf\xbf",  # U+10FFFF, the last code point
        b"\xc0\x80",  # overlong NUL
        b"\xc1\xbf",
        b"\xe0\x9f\xbf",  # overlong three-byte
        b"\xed\xa0\x80",  # a surrogate
        b"\xed\xbf\xbf",
        b"\xf0\x8f\xbf\xbf",  # overlong four-byte
        b"\xf4\x90\x80\x80",  # past U+10FFFF
        b"\xf5\x80\x80\x80",
        b"\xff",
        b"\x80",  # a lone continuation byte
        b"\xe2\x82",  # truncated
        b"12345678\xe2\x82\xac",  # after an eight-byte ASCII run
        b"1234567\xf0\x9f\x98",  # truncated at the end of a run
    ],
)
def test_utf8_verdicts_are_upbs(text: bytes) -> None:
    """Strict UTF-8 exactly: native.valid() says True for a string upb accepts, False otherwise."""
    base = proto_span(name=MARK).SerializeToString()
    span = base.replace(_field(5, 2, MARK.encode()), _field(5, 2, text))
    value = _wrap_span(span)
    assert native.valid(value) == upb_accepts(value)


@pytest.mark.parametrize(
    ("depth", "promised", "upb"),
    [(10, True, True), (25, True, True), (35, False, True), (47, False, True), (48, False, False)],
)
@needs_extension  # the C validator's promise; the Python definition defers to upb
def test_deep_nesting_is_promised_only_well_under_upbs_limit(
    depth: int, promised: bool, upb: bool
) -> None:
    """Each array level is two messages: upb's limit of 100 falls between 47 and 48 levels."""
    value = deep_proto_request(depth)
    assert (native.valid(value), upb_accepts(value)) == (promised, upb)


@pytest.mark.parametrize(
    ("extra", "promised"),
    [
        (_field(99, 0, b"\x07"), True),  # unknown varint: upb skips it
        (_field(98, 1, bytes(8)) + _field(97, 5, bytes(4)), True),  # unknown fixed
        (_field(99, 2, b"\xff"), False),  # unknown bytes: a newer schema may make it text
        (_field(5, 0, b"\x07"), False),  # a known field with another wire type
        (b"\x1b\x08\x01\x1c", False),  # a group
        (_field(6, 0, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), True),  # 10-byte varint
        (_field(6, 0, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), False),  # past 64 bits
        (b"\x00", False),  # field number 0
        (_field(9, 2, b"\x0a\x05ab"), False),  # a length past the end of its message
    ],
)
@needs_extension  # the C validator's promise; the Python definition defers to upb
def test_odd_wire_forms(extra: bytes, promised: bool) -> None:
    value = _wrap_span(proto_span().SerializeToString() + extra)
    assert native.valid(value) == promised
    if promised:
        assert upb_accepts(value)


def test_mutants_valid_says_true_for_are_all_accepted_by_upb() -> None:
    """Random damage (flips, cuts, inserts, copied runs): no True for a record upb rejects."""
    rng = random.Random(11)
    seeds = [v for v in generated(7, 40) if len(v) > 64] + [_every_string_field()]
    promised = rejected = 0
    for _ in range(6000):
        value = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(value))
            action = rng.randrange(4)
            if action == 0:
                value[at] = rng.randrange(256)
            elif action == 1:
                del value[at:]
            elif action == 2:
                value[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            elif len(value) > 8:
                start = rng.randrange(len(value) - 4)
                value[at:at] = value[start : start + rng.randint(1, 4)]
            if not value:
                value = bytearray(b"\x0a")
        mutant = bytes(value)
        if native.valid(mutant):
            promised += 1
            assert upb_accepts(mutant), mutant.hex()
        elif not upb_accepts(mutant):
            rejected += 1
    # Both sides are exercised: many mutants keep the shortcut, many are bad.
    assert promised > 100 and rejected > 1000, (promised, rejected)


# Damaged and unusual records: the native decode path and the Python one agree on each.
_ADVERSARIAL = {
    "an empty resource": b"\x0a\x00",
    "one byte": b"\x0a",
    "length past the end": b"\x0a\x05ab",
    "field number 0": b"\x00",
    "a group": b"\x1b\x08\x01\x1c",
    "random": bytes(random.Random(5).randrange(256) for _ in range(64)),
    "bad utf-8 name": _wrap_span(_field(5, 2, b"\xc3\x28")),
    "deep": deep_proto_request(48),
    "truncated span": _wrap_span(proto_span().SerializeToString())[:-3],
    "known field, other wire type": _wrap_span(
        proto_span().SerializeToString() + _field(5, 0, b"\x07")
    ),
    "two resources": proto_request([proto_span()]).SerializeToString() * 2,
    "json-looking proto": b"\n{" + bytes(123),
}


@pytest.mark.parametrize("name", sorted(_ADVERSARIAL))
def test_adversarial_records_decode_as_the_python_decoder_does(name: str) -> None:
    value = _ADVERSARIAL[name]
    if native.valid(value):
        assert upb_accepts(value)
    assert_equivalent([value])


def _scanned_heads() -> list[SpanHead]:
    """Heads the native scan made (bytes behind them), ordinary and unusual spans."""
    enricher = Enricher()
    values = generated(8, 40) + [
        proto_request([factory()]).SerializeToString() for factory in EDGE_SPANS.values()
    ]
    heads = []
    for value in values:
        try:
            heads += decode_message(value, None, max_bytes=1 << 24, enricher=enricher).spans
        except DecodeError:
            continue
    return [h for h in heads if h.span is None]


@needs_extension
def test_columns_and_arrow_columns() -> None:
    heads = _scanned_heads()
    assert len(heads) > 100
    assert head_columns(heads) == columns_of(heads)
    ours, theirs = head_buffers(heads), arrow_columns_of(heads)
    for name in TRACE_COLUMNS:
        assert from_layout(ours[name], len(heads)).equals(from_layout(theirs[name], len(heads))), (
            name
        )


# --- spanmetrics ---------------------------------------------------------------------------


def _kind_head(service: str, kind: int, status: int, duration_ns: int) -> SpanHead:
    return native.SpanHead(
        "a" * 32, "1" * 16, "", 0, duration_ns, service, "op", False, 0, b"", 0, 0, None, None,
        kind, status,
    )  # fmt: skip


_kind_heads = st.lists(
    st.builds(
        _kind_head,
        st.sampled_from(["a", "b", fresh("a")]),
        st.integers(-(2**31), 2**31 - 1) | st.integers(0, 6),
        st.integers(-(2**31), 2**31 - 1) | st.integers(0, 3),
        st.integers(0, 2**64) | st.sampled_from([0, 2_000_000, 2_000_001, 15_000_000_000]),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_kind_heads, max_size=4))
def test_spanmetrics_add(records: list[list[SpanHead]]) -> None:
    from pipeline.spanmetrics.counts import BOUNDS_NS, spanmetrics_add_of

    ours: dict[tuple[str, str, int, int], list[int]] = {}
    theirs: dict[tuple[str, str, int, int], list[int]] = {}
    for spans in records:
        native.spanmetrics_add(spans, ours, BOUNDS_NS)
        spanmetrics_add_of(spans, theirs, BOUNDS_NS)
    assert ours == theirs


@needs_extension
def test_spanmetrics_add_takes_heads_only() -> None:
    built = span()
    assert built.span is not None
    with pytest.raises(TypeError, match="SpanHead"):
        native.spanmetrics_add([built.span], {}, (1, 2))


# --- service graph -------------------------------------------------------------------------

_KV = st.builds(
    lambda key, any_len, tag, length, value: (
        b"\x0a" + bytes((len(key),)) + key + b"\x12" + any_len + tag + length + value
    ),
    st.sampled_from([b"db.system", b"peer.service", b"server.address", b"db.name"]),
    st.sampled_from([b"\x00", b"\x05", b"\x06", b"\x7f", b"\x81\x01", b"\x80\x80", b"\xff"]),
    st.sampled_from([b"\x0a", b"\x10", b""]),
    st.sampled_from([b"\x00", b"\x03", b"\x04", b"\x85\x01", b"\x80", b"\x7f"]),
    st.sampled_from([b"pg", b"pgsq", "é中".encode(), b"\xff\xfe", b"x" * 140, b""]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(_KV, st.binary(max_size=6)), max_size=6).map(b"".join),
    st.integers(-3, 40),
    st.integers(-3, 400),
    st.integers(1, 300),
)
def test_peer_in_span(value: bytes, start: int, end: int, max_peer: int) -> None:
    needles = _PEER_NEEDLES
    got = native.peer_in_span(value, start, end, needles, max_peer)
    assert got == peer_in_span_of(value, start, end, needles, max_peer)


def test_peer_in_span_follows_the_needles_order_and_skips_empty_values() -> None:
    value = (
        b"\x0a\x02ab\x12\x02\x0a\x00"
        + b"\x0a\x02cd\x12\x03\x0a\x01x"
        + b"\x0a\x02ef\x12\x03\x0a\x01y"
    )
    needles = ((b"", True), (b"\x0a\x02ab\x12", True), (b"\x0a\x02ef\x12", False),
               (b"\x0a\x02cd\x12", True))  # fmt: skip
    for end in range(len(value) + 2):
        expected = peer_in_span_of(value, 0, end, needles, 256)
        assert native.peer_in_span(value, 0, end, needles, 256) == expected
    assert native.peer_in_span(value, 0, len(value), needles, 256) == ("y", False)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(-(10**9), 10**14),
            st.integers(-(2**70), 2**70),
            st.sampled_from([0, 1, 2**53, 2**53 + 1, -(2**53) - 1, 2**63, 10**30]),
        ),
        max_size=60,
    ),
    st.sampled_from([_SKETCH_INV_LOG_GAMMA, 1.0, 100.0]),
)
def test_sketch_counts(values: list[int], inv_log_gamma: float) -> None:
    assert native.sketch_counts(values, inv_log_gamma) == sketch_counts_of(values, inv_log_gamma)


def test_sketch_counts_rejects_what_the_python_definition_rejects() -> None:
    for bad in (["x"], [None]):
        with pytest.raises(TypeError):
            sketch_counts_of(bad, 1.0)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            native.sketch_counts(bad, 1.0)
