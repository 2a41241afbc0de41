"""``valid()``: a True is a promise that upb accepts the bytes; anything else is left to upb.

The decoder skips upb's parse when ``valid`` says True, so a True for bytes upb
rejects would let a bad record through. Every case checks the promise against
upb itself; the cases where ``valid`` must also say True make sure the shortcut
is taken for ordinary traffic.
"""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from pipeline.errors import DecodeError
from pipeline.otlp._heads import valid
from pipeline.otlp.otlp_proto import parse_request
from pipeline.otlp.samples import deep_proto_request, key_values, proto_request, proto_span
from tests.unit.otlp.test_heads import _field, _wrap_span, generated

MARK = "QQQQ"  # replaced on the wire by four bytes of the same length


def upb_accepts(value: bytes) -> bool:
    try:
        parse_request(value)
    except DecodeError:
        return False
    return True


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


def test_ordinary_traffic_takes_the_shortcut() -> None:
    values = generated(5, 200) + generated(6, 50, batch_traces=5) + [_every_string_field()]
    assert all(valid(v) for v in values)
    assert all(upb_accepts(v) for v in values)


@pytest.mark.parametrize("occurrence", range(_every_string_field().count(MARK.encode())))
def test_bad_utf8_in_any_string_field_is_left_to_upb(occurrence: int) -> None:
    value = _every_string_field()
    at = -1
    for _ in range(occurrence + 1):
        at = value.index(MARK.encode(), at + 1)
    broken = value[:at] + b"\xc3\x28QQ" + value[at + 4 :]
    assert not valid(broken)
    with pytest.raises(DecodeError) as caught:
        parse_request(broken)
    assert caught.value.reason == "bad_utf8"


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
    """Strict UTF-8 exactly: valid() says True for a string upb accepts, False otherwise."""
    base = proto_span(name=MARK).SerializeToString()
    span = base.replace(_field(5, 2, MARK.encode()), _field(5, 2, text))
    value = _wrap_span(span)
    assert valid(value) == upb_accepts(value)


@pytest.mark.parametrize(
    ("depth", "promised", "upb"),
    [(10, True, True), (25, True, True), (35, False, True), (47, False, True), (48, False, False)],
)
def test_deep_nesting_is_promised_only_well_under_upbs_limit(
    depth: int, promised: bool, upb: bool
) -> None:
    """Each array level is two messages: upb's limit of 100 falls between 47 and 48 levels."""
    value = deep_proto_request(depth)
    assert (valid(value), upb_accepts(value)) == (promised, upb)


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
def test_odd_wire_forms(extra: bytes, promised: bool) -> None:
    value = _wrap_span(proto_span().SerializeToString() + extra)
    assert valid(value) == promised
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
        if valid(mutant):
            promised += 1
            assert upb_accepts(mutant), mutant.hex()
        elif not upb_accepts(mutant):
            rejected += 1
    # Both sides are exercised: many mutants keep the shortcut, many are bad.
    assert promised > 100 and rejected > 1000, (promised, rejected)
