"""Dead letters: every record (or stored-rejected trace) the stream cannot take reaches the DLQ.

A dead letter holds back its partition's commit until the DLQ acknowledges it,
so nothing is lost however the DLQ fails; everything after it keeps flowing
(decoded, sampled, written), only the commit position waits.

* A value too long to carry (past ``max_value_bytes``; Kafka refuses records
  over the producer's ``message.max.bytes``) is cut to that length, with its
  original size and SHA-256 in headers, next to the source topic, partition
  and offset where the whole record stays. It is cut as soon as the letter is
  made, so a 200 MB decompression bomb is not held in memory while it waits.
* A send the broker refuses as too large anyway (a DLQ topic with a smaller
  ``max.message.bytes``) is resent as a reference: headers, no value.
* Any other failure (DLQ topic missing, broker away) is retried with backoff
  (1 s doubling to 60 s), never given up: giving up would let the commit pass a
  record nobody holds. From the fifth failure on, each failure is logged as an
  error naming the partition and offset whose commit waits, and
  ``spanstream_dlq_delivery_failures_total`` / ``spanstream_dlq_unsent_records``
  tell monitoring. The input topic's retention is the deadline to fix the DLQ.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from pipeline import metrics
from pipeline.clock import Clock
from pipeline.errors import BatchRejected
from pipeline.ingest.core import DeadLetter
from pipeline.sampling.buffer import DecidedTrace
from pipeline.sinks.clickhouse import TRACE_COLUMNS, span_columns

log = logging.getLogger(__name__)
Produce = Callable[..., None]
#: Original headers past this many bytes in all are left out (counted in a header).
MAX_HEADER_BYTES = 65_536
#: Failed sends of one letter before each further failure is logged as an error.
LOUD_AFTER = 5
RETRY_INITIAL = 1.0
RETRY_CEILING = 60.0
TRUNCATED = "spanstream.dlq.truncated"


class DeadLetters:
    """Sends dead letters to ``topic`` and calls ``on_delivered`` once the DLQ has each."""

    def __init__(
        self,
        *,
        produce: Produce,
        topic: str,
        source_topic: str,
        clock: Clock,
        on_delivered: Callable[[DeadLetter], None],
        max_value_bytes: int = 524_288,
    ) -> None:
        self._produce = produce
        self.topic = topic
        self.source_topic = source_topic
        self.clock = clock
        self.on_delivered = on_delivered
        self.max_value_bytes = max_value_bytes
        self._waiting: list[DeadLetter] = []
        self._in_flight = 0

    def fit(self, letter: DeadLetter) -> DeadLetter:
        """The letter as it will be sent: value cut to size, original headers bounded."""
        headers = list(letter.headers)
        header_bytes = sum(len(k) + len(v or b"") for k, v in headers)
        if header_bytes > MAX_HEADER_BYTES:
            headers = [("spanstream.dlq.headers_dropped", str(len(headers)).encode())]
        value = letter.value
        if value is not None and len(value) > self.max_value_bytes:
            headers += _original(value)
            value = value[: self.max_value_bytes]
        return replace(letter, value=value, headers=headers)

    def send(self, letter: DeadLetter) -> None:
        """Produce one letter; a failure schedules its retry, it never raises."""
        if letter.attempts == 0:  # a retry was logged when its send failed
            log.warning(
                "dead-lettering %s[%d]@%d: %s: %s",
                self.source_topic,
                letter.partition,
                letter.offset,
                letter.reason,
                letter.detail[:300],
            )
        self._in_flight += 1
        self._gauge()

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            self._in_flight -= 1
            if err is None:
                metrics.DLQ_RECORDS.labels(letter.reason).inc()
                self._gauge()
                self.on_delivered(letter)
            else:
                self._failed(letter, err)

        try:
            self._produce(
                self.topic,
                key=letter.key,
                value=letter.value,
                headers=[*letter.headers, *dlq_headers(self.source_topic, letter)],
                on_delivery=delivered,
            )
        except KafkaException as exc:  # refused locally, e.g. MSG_SIZE_TOO_LARGE
            self._in_flight -= 1
            self._failed(letter, exc.args[0])

    def retry_due(self) -> None:
        """Resend the letters whose backoff is over."""
        now = self.clock.now()
        due = [letter for letter in self._waiting if letter.retry_at <= now]
        self._waiting = [letter for letter in self._waiting if letter.retry_at > now]
        for letter in due:
            self.send(letter)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop waiting letters of revoked partitions: their next owner dead-letters them."""
        gone = set(partitions)
        self._waiting = [letter for letter in self._waiting if letter.partition not in gone]
        self._gauge()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _failed(self, letter: DeadLetter, err: KafkaError | Any) -> None:
        attempts = letter.attempts + 1
        code = err.code() if isinstance(err, KafkaError) else None
        label = err.name() if isinstance(err, KafkaError) else type(err).__name__
        metrics.DLQ_DELIVERY_FAILURES.labels(label).inc()
        if code == KafkaError.MSG_SIZE_TOO_LARGE and letter.value:
            letter = self._reference(letter)
        delay = min(RETRY_CEILING, RETRY_INITIAL * 2 ** min(attempts - 1, 16))
        log.log(
            logging.ERROR if attempts >= LOUD_AFTER else logging.WARNING,
            "DLQ %s refused %s[%d]@%d (attempt %d): %s; retrying in %.0fs, the "
            "partition's commit waits at that offset until the DLQ takes it",
            self.topic,
            self.source_topic,
            letter.partition,
            letter.offset,
            attempts,
            err,
            delay,
        )
        self._waiting.append(replace(letter, attempts=attempts, retry_at=self.clock.now() + delay))
        self._gauge()

    @staticmethod
    def _reference(letter: DeadLetter) -> DeadLetter:
        """The letter without its value: headers name the record and its size."""
        value = letter.value or b""
        headers = list(letter.headers)
        if not any(name == TRUNCATED for name, _ in headers):
            headers += _original(value)
        return replace(letter, value=None, headers=headers)

    def _gauge(self) -> None:
        metrics.DLQ_UNSENT.set(self._in_flight + len(self._waiting))


def _original(value: bytes) -> list[tuple[str, bytes]]:
    return [
        (TRUNCATED, b"1"),
        ("spanstream.source.size", str(len(value)).encode()),
        ("spanstream.source.sha256", hashlib.sha256(value).hexdigest().encode()),
    ]


def dlq_headers(topic: str, letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Headers naming the error and the source record, added to the original ones."""
    return [
        ("spanstream.error.reason", letter.reason.encode()),
        ("spanstream.error.detail", letter.detail[:1000].encode("utf-8", "replace")),
        ("spanstream.source.topic", topic.encode()),
        ("spanstream.source.partition", str(letter.partition).encode()),
        ("spanstream.source.offset", str(letter.offset).encode()),
    ]


def trace_letter(trace: DecidedTrace, exc: BatchRejected) -> DeadLetter:
    """A kept trace the store refused: its rows as JSON, reason ``store_rejected``.

    It holds back every record it has spans in (``refs``); the headers name them
    all, the partition/offset headers the first.
    """
    refs = sorted(_ref(ref) for ref in trace.refs)
    columns = span_columns(trace.spans)
    rows = [
        dict(zip(TRACE_COLUMNS, values, strict=True))
        for values in zip(*columns.values(), strict=True)
    ]
    value = json.dumps({"traceId": trace.trace_id, "rows": rows}, default=str).encode()
    partition, offset = refs[0]
    records = ",".join(f"{p}@{o}" for p, o in refs)
    headers = [
        ("content-type", b"application/json"),
        ("spanstream.source.records", records.encode()),
    ]
    return DeadLetter(
        partition,
        offset,
        trace.trace_id.encode(),
        value,
        headers,
        "store_rejected",
        str(exc),
        refs=tuple(trace.refs),
    )


def _ref(ref: object) -> tuple[int, int]:
    assert isinstance(ref, tuple)
    return int(ref[0]), int(ref[1])
