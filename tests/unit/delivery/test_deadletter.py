"""Dead letters of alert delivery: headers, values cut to size, retried until acknowledged."""

from __future__ import annotations

import pytest

from pipeline.delivery.backoff import Backoff
from pipeline.delivery.deadletter import MAX_VALUE_BYTES, DeadLetterSender, letter_headers
from tests.unit.delivery.fakes import FakeProducer, FakeRecord


@pytest.mark.parametrize(
    ("reason", "detail", "extra", "expected"),
    [
        (
            "not_json",
            "Expecting value",
            {},
            {"spanstream.error.reason": b"not_json", "spanstream.error.detail": b"Expecting value"},
        ),
        (
            "rejected",
            "webhook refused: HTTP 422",
            {"receiver": "webhook", "status": "422"},
            {"spanstream.delivery.receiver": b"webhook", "spanstream.delivery.status": b"422"},
        ),
        ("not_alert", "x" * 5000, {}, {"spanstream.error.detail": b"x" * 1000}),
        ("not_alert", "bad \udc80 text", {}, {"spanstream.error.detail": b"bad ? text"}),
    ],
    ids=["reason", "refusal", "long-detail", "unencodable-detail"],
)
def test_letter_headers(
    reason: str, detail: str, extra: dict[str, str], expected: dict[str, bytes]
) -> None:
    headers = dict(letter_headers("alerts", 2, 41, reason, detail, extra))
    assert {k: headers[k] for k in expected} == expected
    assert headers["spanstream.source.topic"] == b"alerts"
    assert (headers["spanstream.source.partition"], headers["spanstream.source.offset"]) == (
        b"2",
        b"41",
    )


def _sender(producer: FakeProducer) -> DeadLetterSender:
    return DeadLetterSender(producer, "dlq", Backoff(1, 30), lambda: 1.0)


def test_a_value_too_large_is_cut_and_its_size_kept() -> None:
    producer = FakeProducer()
    record = FakeRecord(0, 5, b"{" * (MAX_VALUE_BYTES + 10))
    assert _sender(producer).send(record, "not_json", "too deep", {}, lambda s, p: True)
    [letter] = producer.sent
    assert len(letter["value"]) == MAX_VALUE_BYTES and letter["key"] == b"svc"
    assert dict(letter["headers"])["spanstream.source.size"] == str(MAX_VALUE_BYTES + 10).encode()


def test_a_refused_send_is_retried_with_backoff_until_acknowledged() -> None:
    producer, waits = FakeProducer(fail=3), []

    def wait(seconds: float, partition: int) -> bool:
        waits.append(seconds)
        return True

    assert _sender(producer).send(FakeRecord(0, 5, b"x"), "not_json", "", {}, wait)
    assert waits == [1, 2, 4] and len(producer.sent) == 1


def test_a_send_given_up_while_waiting_reports_it() -> None:
    producer = FakeProducer(fail=100)
    assert not _sender(producer).send(
        FakeRecord(0, 5, b"x"), "not_json", "", {}, lambda s, p: False
    )
    assert producer.sent == []
