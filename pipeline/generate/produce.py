"""The Kafka edge: a confluent-kafka producer whose every delivery report is checked.

Idempotent, ``acks=all``, batching with ``linger.ms``. A failed delivery is
kept and raised (:class:`~pipeline.errors.ServiceUnavailable`) at the next
:meth:`KafkaSink.check` or at :meth:`KafkaSink.flush`; nothing is dropped
silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from pipeline.errors import ConfigError, ServiceUnavailable
from pipeline.kafka_client import KafkaSecurity, RefusalWatch, librdkafka_config

log = logging.getLogger(__name__)

COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")

#: Record headers as confluent-kafka takes them.
Headers = list[tuple[str, str | bytes | None]]

#: Called with (partition, offset) once a record is acknowledged.
OnDelivered = Callable[[int, int], None]


class KafkaSink:
    """Produces records to one topic; see the module docstring."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        security: KafkaSecurity,
        compression: str = "none",
        linger_ms: int = 20,
        message_timeout_ms: int = 30_000,
    ) -> None:
        if compression not in COMPRESSIONS:
            raise ConfigError(f"--compression={compression!r}: one of {', '.join(COMPRESSIONS)}")
        self.bootstrap = bootstrap
        self.topic = topic
        self.failures: list[str] = []
        self.delivered = 0
        self._refused = RefusalWatch()
        self._producer = Producer(
            {
                **librdkafka_config(bootstrap, security),
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": linger_ms,
                "batch.num.messages": 10_000,
                "compression.type": compression,
                "message.timeout.ms": message_timeout_ms,
                "queue.buffering.max.messages": 200_000,
                # The exporter's default max_message_bytes.
                "message.max.bytes": 1_000_000,
                "error_cb": self._on_error,
                # librdkafka logs every refused connection to stderr; the
                # failure surfaces once, as ServiceUnavailable, instead.
                "log_level": 7 if log.isEnabledFor(logging.DEBUG) else 2,
            }
        )

    def _on_error(self, err: KafkaError) -> None:
        # Transport errors are retried by librdkafka; only fatal ones end the run.
        log.debug("kafka: %s", err)
        self._refused(err)
        if err.fatal():
            self.failures.append(str(err))

    def check_ready(self, timeout_s: float = 5.0) -> int:
        """Fetch topic metadata; returns the partition count or raises ServiceUnavailable."""
        try:
            meta = self._producer.list_topics(self.topic, timeout=timeout_s)
        except KafkaException as exc:
            self._producer.poll(0)  # serves error_cb, which records a refused login
            if self._refused.reason is not None:
                raise ServiceUnavailable(
                    f"Kafka at {self.bootstrap} refused the connection: {self._refused.reason}"
                ) from None
            raise ServiceUnavailable(f"Kafka at {self.bootstrap} is unreachable: {exc}") from None
        topic = meta.topics.get(self.topic)
        if topic is None or topic.error is not None:
            raise ServiceUnavailable(
                f"topic {self.topic!r} is not available on {self.bootstrap}"
                f" ({topic.error if topic else 'missing'}); create it with `spanstream topics`"
            )
        return len(topic.partitions)

    def send(
        self,
        key: bytes | None,
        value: bytes,
        headers: Headers | None,
        on_delivered: OnDelivered,
    ) -> None:
        """Queue one record; waits for room when the local queue is full."""

        def report(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                self.failures.append(f"{err} (key={key!r})")
                return
            self.delivered += 1
            on_delivered(msg.partition(), msg.offset())

        while True:
            try:
                self._producer.produce(
                    self.topic, value=value, key=key, headers=headers, on_delivery=report
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def poll(self, timeout_s: float) -> None:
        """Serve delivery reports for up to ``timeout_s`` (also the real-time pacing wait)."""
        self._producer.poll(timeout_s)
        self.check()

    def check(self) -> None:
        """Raise ServiceUnavailable if any delivery failed so far."""
        if self.failures:
            raise ServiceUnavailable(
                f"{len(self.failures)} message(s) to {self.topic!r} failed: {self.failures[0]}"
            )

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait for every queued record's delivery report; raise on failure or leftovers."""
        left = self._producer.flush(timeout_s)
        self.check()
        if left:
            raise ServiceUnavailable(f"{left} message(s) to {self.topic!r} still undelivered")
