"""Sending cuts of window partials to the partials topic, in waves.

Each wave is steps 2 and 3 of :mod:`pipeline.ingest.commit`: the intents of its
cuts are committed, every partial is produced and flushed, and only once all
were delivered are the cuts marked delivered. The commit metadata holds ONE
intent per partition, so a wave carries at most one cut per partition, and a
partition's next cut is announced only after the previous one was delivered.
Cuts that failed are resent, unchanged, before anything new is cut (the
aggregator keeps collecting meanwhile, so nothing is lost: the next cut is
larger).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaError, Message, Producer

from pipeline.ingest.commit import CommitProtocol
from pipeline.ingest.core import Cut, IngestCore
from pipeline.tables import key_bytes
from pipeline.windows.assembler import series_key

log = logging.getLogger(__name__)
Produce = Callable[..., None]
#: Seconds to wait for the partials of a wave to be delivered.
FLUSH_TIMEOUT = 30


class CutSender:
    """Sends the core's due cuts through the commit protocol's steps 2 and 3."""

    def __init__(
        self,
        *,
        core: IngestCore,
        commits: CommitProtocol,
        producer: Producer,
        produce: Produce,
        topic: str,
    ) -> None:
        self.core = core
        self.commits = commits
        self.producer = producer
        self._produce = produce
        self.topic = topic
        self._unsent: list[Cut] = []
        self._errors: list[str] = []

    def send(self, force: bool = False) -> None:
        """Send what failed before, else the cuts due now (``force``: every partition's)."""
        if not self._unsent:
            self._unsent = self.core.due_cuts(force)
        while self._unsent:
            wave, rest = _one_per_partition(self._unsent)
            if not self._send_wave(wave):
                self._unsent = [*(_announced(c) for c in wave), *rest]
                return
            self._unsent = rest

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop unsent cuts of revoked partitions: the next owner cuts them again itself
        (sending them from here too would only add duplicates)."""
        gone = set(partitions)
        self._unsent = [c for c in self._unsent if c.partition not in gone]

    def _send_wave(self, wave: list[Cut]) -> bool:
        """Announce, produce and flush; True once every partial is delivered."""
        self.commits.announce(wave)
        for cut in wave:
            for partial in cut.partials:
                self._produce(
                    self.topic,
                    key=partial_key(partial.series),
                    value=partial.to_json(),
                    on_delivery=self._on_delivery,
                )
        if self.producer.flush(FLUSH_TIMEOUT) or self._errors:
            errors, self._errors = self._errors, []
            log.warning("partials not delivered, will resend: %s", errors[:3])
            return False
        self.commits.delivered(wave)
        return True

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._errors.append(str(err))


def partial_key(series: tuple[str, str]) -> bytes:
    """The key of a series' partials: the bytes of its window-table key.

    Same bytes, same murmur2 partition: a series' partials and its table state
    (``windows``, ``detectors``, keyed by :func:`series_key` through Faust's json
    key serializer) sit on the same partition number, so the worker that owns a
    series' partials after a rebalance also owns, and reloads, its state.

    >>> from aiokafka.partitioner import murmur2
    >>> from pipeline.tables import partition_of
    >>> import json
    >>> key = partial_key(("shop", "GET /"))
    >>> json.loads(key) == series_key("shop", "GET /")
    True
    >>> (murmur2(key) & 0x7FFFFFFF) % 6 == partition_of(series_key("shop", "GET /"), 6)
    True
    """
    return key_bytes(series_key(*series))


def _announced(cut: Cut) -> Cut:
    return Cut(cut.partition, cut.offset, cut.partials, announced=True)


def _one_per_partition(cuts: list[Cut]) -> tuple[list[Cut], list[Cut]]:
    """The first cut of each partition, and the rest in their order.

    >>> a, b, c = Cut(0, 5, (), False), Cut(0, 9, (), False), Cut(1, 3, (), False)
    >>> _one_per_partition([a, b, c]) == ([a, c], [b])
    True
    """
    wave: list[Cut] = []
    rest: list[Cut] = []
    seen: set[int] = set()
    for cut in cuts:
        (rest if cut.partition in seen else wave).append(cut)
        seen.add(cut.partition)
    return wave, rest
