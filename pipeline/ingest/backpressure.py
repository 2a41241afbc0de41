"""Backpressure of the ingest loop: pause fetching, and tell the window stage why it is quiet.

Fetching pauses while the trace sink backs off after a failed write and while
the traces held in memory reach their bound. Pausing (not skipping consume,
nor polling and discarding what poll returns) is what keeps records safe:
librdkafka purges the prefetched ones and refetches from the last record
handed over on resume.

While paused, :class:`~pipeline.windows.hold.Hold` markers go to every
partials partition: no record means no partial, and a window stage that hears
nothing from a source for long enough takes the stream as stopped and closes
its windows by the wall clock; the records waiting in Kafka would then count
late.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from pipeline.clock import Clock
from pipeline.errors import SinkUnavailable
from pipeline.ingest.core import IngestCore
from pipeline.sampling.buffer import DecidedTrace
from pipeline.sinks.base import BatchingSink
from pipeline.windows.hold import Hold

log = logging.getLogger(__name__)
#: Seconds between Hold markers while fetching is paused (well below any idle close).
HOLD_INTERVAL = 5.0


class FetchGate:
    """Pauses and resumes the consumer's partitions; sends Hold markers while paused."""

    def __init__(
        self,
        *,
        consumer: Consumer,
        core: IngestCore,
        sink: BatchingSink[DecidedTrace],
        clock: Clock,
        produce: Callable[..., None],
        partials_topic: str,
        partials_partitions: int,
        max_buffered_traces: int,
    ) -> None:
        self.consumer = consumer
        self.core = core
        self.sink = sink
        self.clock = clock
        self._produce = produce
        self.partials_topic = partials_topic
        self.partials_partitions = partials_partitions
        self.max_buffered_traces = max_buffered_traces
        self.paused = False
        self._paused_until = 0.0
        self._held_at = float("-inf")

    def buffer_full(self) -> bool:
        """Memory bound: traces wait ``decision_wait`` in memory, and kept ones then wait
        for their insert, so a fast backlog (or a ClickHouse outage) would otherwise hold
        ever more of them; fetching resumes as they are decided and written."""
        held = len(self.core.buffer) + self.sink.pending_rows
        return held >= self.max_buffered_traces

    def backing_off(self) -> bool:
        return self.clock.now() < self._paused_until

    def update(self) -> None:
        """Pause fetching during a sink backoff or while the buffers are full, else resume."""
        if self.backing_off() or self.buffer_full():
            # Every round: partitions assigned during the backoff must pause too.
            self.consumer.pause(self.consumer.assignment())
            self.paused = True
        elif self.paused:
            self.consumer.resume(self.consumer.assignment())
            self.paused = False

    def back_off(self, exc: SinkUnavailable) -> None:
        self._paused_until = self.clock.now() + exc.retry_after
        self.update()
        log.warning("backpressure: pausing consumption for %.1fs (%s)", exc.retry_after, exc)

    def release(self, partitions: list[TopicPartition]) -> None:
        """Resume partitions that leave: librdkafka keeps a partition's pause flag across
        re-assignment, so one revoked while paused could come back paused for good."""
        if self.paused:
            with contextlib.suppress(KafkaException):
                self.consumer.resume(partitions)

    def hold(self) -> None:
        """While paused, tell every window-stage partition each source is alive."""
        now = self.clock.now()
        if not self.paused or now - self._held_at < HOLD_INTERVAL:
            return
        if now - self._held_at > 2 * HOLD_INTERVAL:
            log.info("fetching paused: holding the windows of %s", self.core.partitions)
        self._held_at = now
        for source in self.core.partitions:
            marker = Hold(source).to_json()
            for partition in range(self.partials_partitions):
                self._produce(self.partials_topic, value=marker, partition=partition)
