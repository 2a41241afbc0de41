"""Wiring of ``spanstream alerts forward``: settings -> Kafka clients, receivers, signals."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from pipeline import metrics
from pipeline.delivery.backoff import Backoff
from pipeline.delivery.deadletter import DeadLetterSender
from pipeline.delivery.forward import Forwarder
from pipeline.delivery.receivers import receivers_from
from pipeline.errors import ConfigError
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def forward(settings: Settings, *, from_beginning: bool = False) -> int:
    """Run the forwarder until SIGTERM or SIGINT; 0 after a clean stop."""
    from confluent_kafka import Consumer, Producer

    from pipeline.kafka_client import RefusalWatch, check_topics, librdkafka_config

    receivers = receivers_from(settings)
    if not receivers:
        raise ConfigError(
            "no receiver: set SPANSTREAM_ALERTMANAGER_URL and/or SPANSTREAM_WEBHOOK_URL "
            "(or --alertmanager-url / --webhook-url)"
        )
    base = librdkafka_config(settings.kafka_bootstrap, settings.kafka_security)
    refused = RefusalWatch()
    consumer = Consumer(
        {
            **base,
            "error_cb": refused,
            "group.id": settings.delivery_group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # A receiver may be retried for longer than this between two records; the
            # loop keeps polling while it waits, so this only bounds one HTTP timeout.
            "max.poll.interval.ms": 300_000,
        }
    )
    producer = Producer({**base, "acks": "all", "enable.idempotence": True, "linger.ms": 0})
    try:
        check_topics(consumer, [settings.alert_topic, settings.delivery_dlq_topic], refused)
        backoff = Backoff(
            settings.delivery_retry_initial_seconds, settings.delivery_retry_max_seconds
        )
        forwarder = Forwarder(
            consumer=consumer,
            dead_letters=DeadLetterSender(producer, settings.delivery_dlq_topic, backoff),
            receivers=receivers,
            settings=settings,
            from_beginning=from_beginning,
        )
        _stop_on_signals(forwarder)
        metrics.serve(settings.delivery_metrics_port, settings.metrics_bind)
        forwarder.run()
        log.info("stopped")
    finally:
        consumer.close()
        producer.flush(5)
    return 0


def _stop_on_signals(forwarder: Forwarder) -> None:
    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping after the current attempt", signal.Signals(signum).name)
        forwarder.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
