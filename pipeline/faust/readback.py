"""Read back the partials Faust's consumer skipped, with a second consumer, before merging on.

:class:`ReadBack` ties three pieces together for the ``assemble`` agent:
:class:`~pipeline.faust.continuity.PartitionContinuity` names a skipped range,
:class:`~pipeline.faust.partials_log.KafkaPartialsLog` reads it (its own
consumer, outside the window stage's group), and
:func:`~pipeline.faust.gaps.settle_read_back` lets Faust commit past it once
merged. The record in hand waits, unacked, meanwhile: nothing after the gap
commits before the gap is merged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import KafkaException

from pipeline import metrics
from pipeline.errors import ServiceUnavailable
from pipeline.faust.continuity import PartitionContinuity
from pipeline.faust.gaps import settle_read_back
from pipeline.faust.partials_log import KafkaPartialsLog, PartialsLog
from pipeline.ingest.loop import KAFKA_RETRY_SECONDS
from pipeline.settings import Settings
from pipeline.windows.stage import Record

log = logging.getLogger(__name__)


class ReadBack:
    """Skipped partials of the owned partials partitions; the log is built on first need."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.continuity = PartitionContinuity()
        #: Built on first need (a skipped partial, a partition's first record): no broker before.
        self.log: PartialsLog | None = None

    def assigned(self, partitions: set[int]) -> None:
        """Faust's assignment after a rebalance: partitions that moved away are forgotten."""
        self.continuity.assigned(partitions)

    async def skipped_before(self, record: Record) -> list[Record]:
        """Records of this partition the consumer skipped before ``record``, read directly."""
        p = record.partition
        if not self.continuity.expecting(p):
            try:
                committed = await asyncio.to_thread(self._log().committed, p)
            except KafkaException as exc:  # untracked until a later record's lookup works
                log.warning("%s[%d]: committed offset not known: %s", record.topic, p, exc)
                committed = None
            if committed is not None:
                self.continuity.expect(p, committed)
        skipped = self.continuity.observe(p, record.offset)
        if not skipped:
            return []
        log.warning(
            "%s[%d]: offsets %d-%d were skipped by the consumer; reading them directly",
            record.topic,
            p,
            skipped.start,
            skipped.stop - 1,
        )
        metrics.PARTIALS_REREAD.inc(len(skipped))
        while True:  # the record in hand waits, unacked: nothing after the gap commits
            try:
                return await asyncio.to_thread(self._log().read, p, skipped)
            except (KafkaException, ServiceUnavailable) as exc:
                log.warning("re-reading %s[%d] failed, retrying: %s", record.topic, p, exc)
                await asyncio.sleep(KAFKA_RETRY_SECONDS)

    async def settle(self, app: Any, message: Any, read_back: list[Record]) -> None:
        """After merging ``read_back``: let Faust commit past it (see :mod:`.gaps`).

        On a rebalance since ``message`` was fetched, the partition is tracked
        afresh: unless Faust delivers the range again from its commit, the next
        record shows the jump again, in this generation.
        """
        if not await settle_read_back(app, message, read_back):
            self.continuity.forget(message.partition)

    def next_offset(self, partition: int) -> int | None:
        """Every offset below it was merged (or read back and merged); None: not tracked."""
        return self.continuity.next_offset(partition)

    def _log(self) -> PartialsLog:
        if self.log is None:
            s = self.settings
            self.log = KafkaPartialsLog(
                s.kafka_bootstrap, s.partials_topic, s.windows_app_id, security=s.kafka_security
            )
        return self.log
