"""The forwarder's Kafka loop: alert topic -> receivers, at least once.

One record at a time, in partition order:

1. a record that is no alert (:mod:`~pipeline.delivery.records`) goes to the delivery
   dead-letter topic with the reason in headers;
2. an alert whose ``alert_id`` was already delivered at this or a higher version is
   skipped (:mod:`~pipeline.delivery.ledger`);
3. otherwise it is posted to every receiver; a failure that may pass (5xx, no answer)
   is retried with backoff and jitter *for ever*, holding this record: nothing
   behind it is skipped, so a receiver down for minutes loses nothing. The consumer
   keeps polling (its partitions paused) so it stays in its group. A permanent refusal
   (4xx) dead-letters the record, naming the receiver and its answer;
4. only then is the record's offset committed. A crash before that re-delivers it: a
   duplicate, which Alertmanager merges by labels and a webhook drops by
   ``alert_id`` + ``version``.

On assignment the forwarder first re-reads each partition from its beginning up to
the committed offset (for a new group: up to the end), only to rebuild the ledger,
so the alerts still firing are known again and re-posted every
``SPANSTREAM_ALERTMANAGER_RESEND_SECONDS`` (Alertmanager keeps alerts in memory only,
and times out alerts that are not re-posted). SIGTERM ends the loop between two
attempts; the held record stays uncommitted.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from pipeline import metrics
from pipeline.clock import Clock, SystemClock
from pipeline.delivery.backoff import Backoff, verdict
from pipeline.delivery.deadletter import DeadLetterSender
from pipeline.delivery.ledger import Ledger
from pipeline.delivery.mapping import superseded
from pipeline.delivery.receivers import Answer, Receiver, alertmanager_body, post, request_body
from pipeline.delivery.records import Record, Rejected, Skipped, parse_alert
from pipeline.errors import ServiceUnavailable
from pipeline.printable import printable
from pipeline.settings import Settings

log = logging.getLogger(__name__)
#: Seconds of one poll of the consumer (also how quickly SIGTERM is noticed).
POLL_SECONDS = 0.5
#: Failed attempts on one alert before each further one is logged as an error.
LOUD_AFTER = 5
#: Seconds a metadata call (committed offsets, watermarks) may take on assignment.
METADATA_TIMEOUT = 10.0


class Forwarder:
    """Consumes the alert topic and delivers each alert to ``receivers``."""

    def __init__(
        self,
        *,
        consumer: Any,
        dead_letters: DeadLetterSender,
        receivers: list[Receiver],
        settings: Settings,
        from_beginning: bool = False,
        clock: Clock | None = None,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.receivers = receivers
        self.settings = settings
        self.from_beginning = from_beginning
        self.clock = clock or SystemClock()
        self.wall = wall
        self.jitter = jitter
        self.backoff = Backoff(
            settings.delivery_retry_initial_seconds, settings.delivery_retry_max_seconds
        )
        self.ledger = Ledger()
        self.stopping = threading.Event()
        self._backlog: deque[Record] = deque()
        #: Per assigned partition: offsets below this were handled before (ledger only).
        self._replay_until: dict[int, int] = {}
        self._replaying: set[int] = set()
        self._next_refresh = self.clock.now() + settings.alertmanager_resend_seconds
        self._alertmanager = next((r for r in receivers if r.name == "alertmanager"), None)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Deliver until :attr:`stopping` is set (SIGTERM)."""
        topic = self.settings.alert_topic
        self.consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        names = ", ".join(f"{r.name} {r.url}" for r in self.receivers)
        log.info("forwarding alerts from %s (group %s) to %s", topic, self._group(), names)
        while not self.stopping.is_set():
            self._refresh_if_due()
            record = self._next()
            if record is not None:
                self.handle(record)
            elif self._replaying:
                self._check_replayed()

    def _next(self) -> Record | None:
        if self._backlog:
            return self._backlog.popleft()
        return self._poll(POLL_SECONDS)

    def _poll(self, seconds: float) -> Record | None:
        record = self.consumer.poll(seconds)
        if record is None:
            return None
        err = record.error()
        if err is None:
            return cast(Record, record)
        if err.fatal():
            raise ServiceUnavailable(f"Kafka consumer failed: {err}")
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("alert topic: %s", err)
        return None

    def handle(self, record: Record) -> None:
        """Deliver, dead-letter or skip one record, then commit it (unless stopped first)."""
        partition, offset = record.partition(), record.offset()
        parsed = parse_alert(record.value())
        if offset < self._replay_until.get(partition, 0):
            if isinstance(parsed, dict):
                self.ledger.record(parsed)
            self._replayed(partition, offset)
            return
        self._replay_done(partition)
        if isinstance(parsed, Rejected):
            done = self._dead_letter(record, parsed.reason, parsed.detail)
        elif isinstance(parsed, Skipped):
            metrics.DELIVERY_SKIPPED.labels(parsed.kind).inc()
            done = True
        elif not self.ledger.is_new(parsed):
            metrics.DELIVERY_STALE.inc()
            log.info("skipping %s: %s delivered before", _where(record), _name(parsed))
            done = True
        else:
            done = self._deliver_all(record, parsed)
        self._resume()
        if done:
            self._commit(record)

    def _deliver_all(self, record: Record, message: dict[str, Any]) -> bool:
        for receiver in self.receivers:
            answer = self._deliver(receiver, record, message)
            if answer is None:
                return False  # stopping, or the partition moved to another forwarder
            if verdict(answer.status) == "permanent":
                detail = f"{receiver.name} refused {_name(message)}: {answer.detail}"
                extra = {"receiver": receiver.name, "status": str(answer.status)}
                if not self._dead_letter(record, "rejected", detail, extra):
                    return False
        self.ledger.record(message)
        return True

    def _deliver(
        self, receiver: Receiver, record: Record, message: dict[str, Any]
    ) -> Answer | None:
        """Post until the receiver takes the alert or refuses it for good; None if abandoned."""
        raw = record.value() or b""
        previous = superseded(self.ledger.firing_message(message["alert_id"]), message)
        attempt, since = 0, self.clock.now()
        while True:
            body = request_body(receiver, message, raw, self.wall(), self.settings, previous)
            answer = post(receiver, body, self.settings.delivery_timeout_seconds)
            outcome = verdict(answer.status)
            if outcome != "retry":
                metrics.DELIVERY_BLOCKED.set(0)
                self._log_outcome(receiver, record, message, answer, attempt, since)
                return answer
            attempt += 1
            metrics.DELIVERY_RETRIES.labels(receiver.name).inc()
            delay = self.backoff.delay(attempt, self.jitter())
            log.log(
                logging.ERROR if attempt >= LOUD_AFTER else logging.WARNING,
                "%s did not take %s (%s, attempt %d): %s; retrying in %.1fs, the partition "
                "waits at this offset",
                receiver.name,
                _name(message),
                _where(record),
                attempt,
                printable(answer.detail),
                delay,
            )
            if not self.wait(delay, record.partition()):
                metrics.DELIVERY_BLOCKED.set(0)
                log.info("leaving %s undelivered: %s", _where(record), self._why_leave())
                return None
            metrics.DELIVERY_BLOCKED.set(self.clock.now() - since)

    def _log_outcome(
        self,
        receiver: Receiver,
        record: Record,
        message: dict[str, Any],
        answer: Answer,
        attempts: int,
        since: float,
    ) -> None:
        if verdict(answer.status) == "delivered":
            metrics.DELIVERY_SENT.labels(receiver.name, message["status"]).inc()
            after = (
                f" after {attempts} retries ({self.clock.now() - since:.0f}s)" if attempts else ""
            )
            log.info("delivered %s to %s%s", _name(message), receiver.name, after)
        else:
            log.error(
                "%s refused %s (%s) for good: %s",
                receiver.name,
                _name(message),
                _where(record),
                printable(answer.detail),
            )

    def _dead_letter(
        self, record: Record, reason: str, detail: str, extra: dict[str, str] | None = None
    ) -> bool:
        metrics.DELIVERY_DEAD_LETTERS.labels(reason).inc()
        log.warning("dead-lettering %s: %s: %s", _where(record), reason, printable(detail[:300]))
        return self.dead_letters.send(record, reason, detail, extra or {}, self.wait)

    # -- waiting without leaving the group ---------------------------------------------------
    def wait(self, seconds: float, partition: int) -> bool:
        """Wait ``seconds`` polling (partitions paused); False to give up the held record."""
        deadline = self.clock.now() + seconds
        while self._keep_waiting(partition):
            left = deadline - self.clock.now()
            if left <= 0:
                return True
            self.consumer.pause(self.consumer.assignment())
            record = self._poll(min(POLL_SECONDS, left))
            if record is not None:
                self._backlog.append(record)  # fetched before the pause: kept in order
            self._refresh_if_due()
        return False

    def _keep_waiting(self, partition: int) -> bool:
        return not self.stopping.is_set() and partition in self._replay_until

    def _why_leave(self) -> str:
        return "stopping" if self.stopping.is_set() else "partition revoked"

    def _resume(self) -> None:
        assignment = self.consumer.assignment()
        if assignment:
            self.consumer.resume(assignment)

    def _commit(self, record: Record) -> None:
        where = TopicPartition(record.topic(), record.partition(), record.offset() + 1)
        try:
            self.consumer.commit(offsets=[where], asynchronous=False)
        except KafkaException as exc:  # e.g. a rebalance: the next owner delivers it again
            log.warning("commit of %s failed (%s): it may be delivered again", _where(record), exc)

    # -- assignment and replay --------------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        try:
            committed = consumer.committed(partitions, timeout=METADATA_TIMEOUT)
            marks = [
                consumer.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT) for tp in committed
            ]
        except KafkaException as exc:
            raise ServiceUnavailable(
                f"cannot read the committed offsets of the alert topic: {exc}"
            ) from None
        for tp, (low, high) in zip(committed, marks, strict=True):
            start = tp.offset if tp.offset >= 0 else (low if self.from_beginning else high)
            self._replay_until[tp.partition] = start
            if start > low:
                self._replaying.add(tp.partition)
            tp.offset = OFFSET_BEGINNING
        consumer.assign(committed)
        shown = ", ".join(
            f"[{tp.partition}] from {self._replay_until[tp.partition]}" for tp in committed
        )
        log.info(
            "assigned %s: delivering %s (earlier records only rebuild the ledger)",
            self.settings.alert_topic,
            shown or "nothing",
        )

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        for partition in gone:
            self._replay_until.pop(partition, None)
            self._replaying.discard(partition)
        self._backlog = deque(r for r in self._backlog if r.partition() not in gone)
        log.info("revoked %s%s", self.settings.alert_topic, sorted(gone))

    def _replayed(self, partition: int, offset: int) -> None:
        if offset + 1 >= self._replay_until.get(partition, 0):
            self._replay_done(partition)

    def _check_replayed(self) -> None:
        """When idle: a partition whose position passed its replay bound is rebuilt (the
        last offsets below it may hold no record, e.g. transaction markers)."""
        assigned = [TopicPartition(self.settings.alert_topic, p) for p in self._replaying]
        for tp in self.consumer.position(assigned):
            if tp.offset >= self._replay_until.get(tp.partition, 0):
                self._replay_done(tp.partition)

    def _replay_done(self, partition: int) -> None:
        if partition in self._replaying:
            self._replaying.discard(partition)
            firing = len(self.ledger.firing())
            topic = self.settings.alert_topic
            log.info("ledger rebuilt from %s[%d]: %d alerts firing", topic, partition, firing)
            self._next_refresh = self.clock.now()  # re-post what fires now without delay

    # -- keeping firing alerts alive in Alertmanager -------------------------------------
    def _refresh_if_due(self) -> None:
        """Re-post every firing alert to Alertmanager once per resend interval."""
        receiver = self._alertmanager
        if receiver is None or self._replaying or self.clock.now() < self._next_refresh:
            return
        firing = self.ledger.firing()
        if not firing:
            return
        self._next_refresh = self.clock.now() + self.settings.alertmanager_resend_seconds
        body = alertmanager_body(firing, self.wall(), self.settings)
        answer = post(receiver, body, self.settings.delivery_timeout_seconds)
        if verdict(answer.status) == "delivered":
            metrics.DELIVERY_REFRESHED.inc(len(firing))
            log.info("re-posted %d firing alerts to alertmanager", len(firing))
        else:
            log.warning(
                "re-posting %d firing alerts failed (%s); next try in %.0fs",
                len(firing),
                printable(answer.detail),
                self.settings.alertmanager_resend_seconds,
            )

    def _group(self) -> str:
        return self.settings.delivery_group


def _where(record: Record) -> str:
    return f"{record.topic()}[{record.partition()}]@{record.offset()}"


def _name(message: dict[str, Any]) -> str:
    return printable(
        f"alert {message['alert_id']} v{message['version']} {message['status']} "
        f"({message['service']} {message['operation']})"
    )
