"""The delivery dead-letter topic: alert records no receiver can take, and why.

A dead letter keeps the record's key and value (cut past :data:`MAX_VALUE_BYTES`)
and adds headers: ``spanstream.error.reason`` (``not_json``, ``not_alert``,
``rejected``), ``spanstream.error.detail``, the source topic, partition and offset,
and for a refusal ``spanstream.delivery.receiver`` and ``spanstream.delivery.status``.
A send the topic does not acknowledge is retried with backoff until it is, so the
record's offset is only committed once the dead-letter topic holds it.

>>> sorted(dict(letter_headers("alerts", 2, 7, "rejected", "HTTP 400", {"status": "400"})))
... # doctest: +NORMALIZE_WHITESPACE
['spanstream.delivery.status', 'spanstream.error.detail', 'spanstream.error.reason',
 'spanstream.source.offset', 'spanstream.source.partition', 'spanstream.source.topic']
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from pipeline.delivery.backoff import Backoff
from pipeline.delivery.records import Record

log = logging.getLogger(__name__)
#: A dead letter's value is cut to this many bytes (under the producer's 1 MB limit).
MAX_VALUE_BYTES = 900_000
#: Seconds one send may wait for the topic's acknowledgement.
ACK_TIMEOUT = 15.0
Headers = list[tuple[str, bytes]]
#: ``wait(seconds, partition)``: waits, False when the held record is to be given up.
Wait = Callable[[float, int], bool]


def letter_headers(
    topic: str, partition: int, offset: int, reason: str, detail: str, extra: dict[str, str]
) -> Headers:
    """The headers naming why and where from (``extra`` as ``spanstream.delivery.*``)."""
    return [
        ("spanstream.error.reason", reason.encode()),
        ("spanstream.error.detail", detail[:1000].encode("utf-8", "replace")),
        ("spanstream.source.topic", topic.encode()),
        ("spanstream.source.partition", str(partition).encode()),
        ("spanstream.source.offset", str(offset).encode()),
        *((f"spanstream.delivery.{k}", v.encode("utf-8", "replace")) for k, v in extra.items()),
    ]


class DeadLetterSender:
    """Produces dead letters to ``topic`` and waits for each acknowledgement."""

    def __init__(
        self,
        producer: Any,
        topic: str,
        backoff: Backoff,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.backoff = backoff
        self.jitter = jitter

    def send(
        self, record: Record, reason: str, detail: str, extra: dict[str, str], wait: Wait
    ) -> bool:
        """True once the topic holds the letter; False if ``wait`` gave up first."""
        headers = letter_headers(
            record.topic(), record.partition(), record.offset(), reason, detail, extra
        )
        value = record.value()
        if value is not None and len(value) > MAX_VALUE_BYTES:
            headers.append(("spanstream.source.size", str(len(value)).encode()))
            value = value[:MAX_VALUE_BYTES]
        attempt = 0
        while (error := self._produce(record.key(), value, headers)) is not None:
            attempt += 1
            delay = self.backoff.delay(attempt, self.jitter())
            log.error(
                "dead-letter topic %s refused %s[%d]@%d (attempt %d): %s; retrying in %.1fs",
                self.topic,
                record.topic(),
                record.partition(),
                record.offset(),
                attempt,
                error,
                delay,
            )
            if not wait(delay, record.partition()):
                return False
        return True

    def _produce(self, key: bytes | None, value: bytes | None, headers: Headers) -> str | None:
        """One send; None when acknowledged, else what went wrong."""
        outcome: list[str | None] = []

        def delivered(err: Any, _msg: Any) -> None:
            outcome.append(None if err is None else str(err))

        try:
            self.producer.produce(
                self.topic, key=key, value=value, headers=headers, on_delivery=delivered
            )
        except (KafkaException, BufferError) as exc:
            return str(exc)
        self.producer.flush(ACK_TIMEOUT)
        if not outcome:
            return f"not acknowledged within {ACK_TIMEOUT:.0f}s"
        return outcome[0]
