"""DeadLetters.fit and trace_letter: what a dead letter carries when it cannot carry it all."""

from __future__ import annotations

import hashlib
import json

from pipeline.clock import ManualClock
from pipeline.errors import BatchRejected
from pipeline.ingest.core import DeadLetter
from pipeline.ingest.deadletter import MAX_HEADER_BYTES, DeadLetters, trace_letter
from pipeline.ingest.progress import Progress
from tests.unit.ingest.records import WAIT, make_core, record, tid


def _letters(max_value_bytes: int) -> DeadLetters:
    return DeadLetters(
        produce=lambda *a, **k: None,
        topic="dlq",
        source_topic="in",
        clock=ManualClock(),
        on_delivered=lambda letter: None,
        max_value_bytes=max_value_bytes,
    )


def test_a_long_value_is_cut_with_its_size_and_hash_and_huge_headers_are_dropped() -> None:
    value = bytes(range(256)) * 40
    headers = [("big", b"x" * (MAX_HEADER_BYTES + 1))]
    letter = DeadLetter(1, 7, b"k", value, headers, "too_large", "d")
    fitted = _letters(1000).fit(letter)
    assert fitted.value == value[:1000]
    got = dict(fitted.headers)
    assert got["spanstream.source.size"] == str(len(value)).encode()
    assert got["spanstream.source.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert got["spanstream.dlq.headers_dropped"] == b"1" and "big" not in got


def test_a_short_value_and_its_headers_go_unchanged() -> None:
    letter = DeadLetter(1, 7, b"k", b"abc", [("h", b"v")], "bad_proto", "d")
    assert _letters(1000).fit(letter) == letter


def test_a_rejected_trace_becomes_json_rows_naming_every_record_it_holds_back() -> None:
    clock = ManualClock()
    core = make_core(clock)
    core.assign(0, Progress(), 0)
    core.on_record(0, 4, None, record(tid(1)), [])
    core.on_record(0, 9, None, record(tid(1)), [])
    clock.advance(WAIT)
    (trace,) = core.decided()
    letter = trace_letter(trace, BatchRejected("Code: 321. out of range"))
    assert (letter.partition, letter.offset, letter.reason) == (0, 4, "store_rejected")
    assert set(letter.refs) == {(0, 4), (0, 9)}
    assert dict(letter.headers)["spanstream.source.records"] == b"0@4,0@9"
    rows = json.loads(letter.value or b"")["rows"]
    assert [r["TraceId"] for r in rows] == [tid(1), tid(1)] and "Timestamp" in rows[0]
