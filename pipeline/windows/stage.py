"""The window stage: partials in, closed windows, anomalies and alerts out; no Faust here.

:class:`WindowStage` is what the ``assemble`` agent and the ``close`` timer of
:mod:`pipeline.faust.app` call. Its steps:

1. :meth:`~WindowStage.take_in` one partials record: a Hold marker holds its
   source, a partial is merged exactly once (:class:`WindowAssembler`), a value
   no worker could have written goes to the DLQ (``bad_partial``), counted.
2. :meth:`~WindowStage.close` the windows the watermark passed, staged: table
   changes (closed windows, detector and episode state) land only after every
   effect of the close is durable (windows and anomalies in ClickHouse, alerts
   acked by Kafka). A failure before that closes the same windows again; the
   retry writes the same rows under the same dedup tokens and republishes the
   same alert ids and versions (at least once).
3. Feed firing alerts back into tail sampling (:class:`AnomalyFlags`): this
   stage is the flags' only writer; see :mod:`pipeline.sampling.anomaly`.
4. Group the close's alerts into incidents and rank their root causes
   (:class:`~pipeline.incidents.desk.IncidentDesk`, when given): alerts carry
   their ``incident_id``; incident records go to ``spanstream_incidents`` and to
   the alert topic (keyed by incident id) after the alerts, inside the same
   staged close, and their state is saved in the ``detectors`` table.
5. With SLOs (:mod:`pipeline.slo.stage`): a close also sends the closed windows'
   SLI counts and evaluates the SLOs whose burn state this worker owns (staged
   with the rest); SLI count records on the partials topic are counted into that
   state in step 1.

One ``asyncio.Lock`` keeps merges out of a close in progress: both run on the
Faust event loop, and a close awaits ClickHouse and Kafka.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline import metrics
from pipeline.alerts import Alert
from pipeline.errors import SinkUnavailable
from pipeline.incidents.desk import IncidentDesk
from pipeline.incidents.records import INCIDENTS_TABLE, IncidentRecord, incident_columns
from pipeline.ingest.core import DeadLetter
from pipeline.ingest.deadletter import dlq_headers
from pipeline.ingest.kafka_config import SESSION_TIMEOUT_MS
from pipeline.judge import WindowJudge
from pipeline.sampling.anomaly import AnomalyFlags
from pipeline.sinks.clickhouse import (
    ANOMALIES_TABLE,
    METRICS_TABLE,
    anomaly_columns,
    table_writer,
    window_columns,
)
from pipeline.slo.ledger import SliCount
from pipeline.store.base import Store
from pipeline.windows.assembler import WindowAssembler
from pipeline.windows.hold import Hold
from pipeline.windows.partial import Partial
from pipeline.windows.series import ClosedWindow

log = logging.getLogger(__name__)

#: Firing alerts flag their operation for this many windows past the window's end.
FLAG_WINDOWS = 2


@dataclass(frozen=True)
class Record:
    """One record of the partials topic, wherever it was read from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Topic(Protocol):
    """Where the stage sends: ``send`` returns once queued, its result once Kafka acked."""

    def send(
        self,
        *,
        key: bytes | None = None,
        value: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Awaitable[Any]]: ...


class StagedTable(MutableMapping[str, Any]):
    """A state table whose writes inside :meth:`staged` land only if the block finishes."""

    @abstractmethod
    def staged(self) -> AbstractContextManager[None]:
        """Hold writes until the block exits normally; discard them if it raises."""


class SloShell(Protocol):
    """What the stage calls of :class:`pipeline.slo.stage.SloStage`."""

    table: StagedTable

    def take_in(self, sli: SliCount) -> str: ...

    async def after_close(self, closed: Sequence[ClosedWindow], ready_ns: int | None) -> None: ...


class WindowStage:
    """Merges partials and closes windows; ``settled`` says whether a close may run now."""

    def __init__(
        self,
        *,
        assembler: WindowAssembler,
        judge: WindowJudge,
        flags: AnomalyFlags,
        store: Store,
        windows: StagedTable,
        detectors: StagedTable,
        dlq: Topic,
        alerts: Topic,
        settled: Callable[[], bool],
        incidents: IncidentDesk | None = None,
        slo: SloShell | None = None,
    ) -> None:
        self.assembler = assembler
        self.judge = judge
        self.flags = flags
        self.store = store
        self.windows, self.detectors = windows, detectors
        self.dlq, self.alerts = dlq, alerts
        self.settled = settled
        self.incidents = incidents
        self.slo = slo
        self.lock = asyncio.Lock()
        self._late_counted = 0

    # -- step 1 ---------------------------------------------------------------------------
    async def take_in(self, record: Record) -> tuple[str, str] | None:
        """Merge one partial (its series) or apply one Hold marker (None)."""
        try:
            if Hold.is_hold(record.value):
                marker = Hold.from_json(record.value)
                async with self.lock:
                    if self.assembler.hold(marker):
                        log.info(
                            "input partition %d paused upstream: its windows wait for it",
                            marker.source_partition,
                        )
                return None
            if SliCount.is_sli(record.value):
                sli = SliCount.from_json(record.value)
                if self.slo is None:  # sent by a worker with SLOs; this one has none
                    metrics.SLO_COUNTS.labels("unknown").inc()
                    return None
                async with self.lock:
                    self.slo.take_in(sli)
                return None
            partial = Partial.from_json(record.value)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # e.g. a tombstone
            await self.dead_letter(record, exc)
            return None
        async with self.lock:
            try:
                self.assembler.merge(partial, lane=record.partition)
                return partial.series
            except ValueError as exc:  # raised before merging: another window size
                refused = exc
        await self.dead_letter(record, refused)
        return None

    async def dead_letter(self, record: Record, exc: Exception) -> None:
        """A value no worker could have written: to the DLQ, counted, never merged."""
        log.error(
            "dead-lettering %s[%d]@%d: bad_partial: %s",
            record.topic,
            record.partition,
            record.offset,
            exc,
        )
        letter = DeadLetter(
            record.partition, record.offset, record.key, record.value, [], "bad_partial", str(exc)
        )
        headers = dlq_headers(record.topic, letter)
        delivery = await self.dlq.send(key=record.key, value=record.value, headers=headers)
        await delivery
        metrics.DLQ_RECORDS.labels("bad_partial").inc()

    # -- step 2 ---------------------------------------------------------------------------
    async def close(self) -> None:
        """Close what is due, staged (module doc); failures are logged and retried later."""
        async with self.lock:
            self._count_late()
            if not self.settled():
                return
            try:
                with self._staged():
                    closed = self.assembler.close_ready()
                    if closed:
                        await asyncio.to_thread(self.write_windows, closed)
                        alerts, records = self.group_incidents(self.judge_windows(closed), closed)
                        await self.publish(alerts)
                        await self.publish_incidents(records)
                    if self.slo is not None:
                        await self.slo.after_close(closed, self._slo_ready_ns())
                # Counted once every effect is durable (a retried close counts once): a
                # reader that sees the counter cover the windows table sees their alerts.
                if closed:
                    metrics.WINDOWS_CLOSED.inc(len(closed))
            except SinkUnavailable as exc:
                log.warning("closed windows or their alerts not written, retrying: %s", exc)
                metrics.INSERT_RETRIES.labels("window_close").inc()
                self.assembler.reload()
            except Exception:
                # A bug, not an outage; still, the series in memory were closed in place:
                # reload them from the table (unchanged) or the windows would be lost. The
                # timer goes on (an exception would end it for good) and retries.
                log.exception("closing windows failed, retrying")
                metrics.INSERT_RETRIES.labels("window_close").inc()
                self.assembler.reload()
            else:
                self._prune_flags()

    def _staged(self) -> ExitStack:
        stack = ExitStack()
        stack.enter_context(self.windows.staged())
        stack.enter_context(self.detectors.staged())
        if self.slo is not None:
            stack.enter_context(self.slo.table.staged())
        return stack

    def _slo_ready_ns(self) -> int | None:
        """SLO windows starting before this are evaluated: one window later than windows
        close, so the SLI counts of series closed by other workers are in."""
        watermark = self.assembler.watermark.global_ns()
        if watermark is None:
            return None
        return watermark - self.assembler.lateness_ns - self.assembler.window_ns

    def _count_late(self) -> None:
        """Export the assembler's late-span count (a plain int it keeps) as a counter."""
        late = self.assembler.late_spans
        if late > self._late_counted:
            metrics.LATE_SPANS.inc(late - self._late_counted)
            self._late_counted = late

    def write_windows(self, closed: Sequence[ClosedWindow]) -> None:
        write = table_writer(self.store, METRICS_TABLE, window_columns)
        write(closed, window_token(closed))
        newest = max(w.window_end_ns for w in closed)
        metrics.WINDOW_LAG.set(time.time() - newest / 1e9)

    def judge_windows(self, closed: Sequence[ClosedWindow]) -> list[Alert]:
        """Score the windows; a firing alert flags its operation for tail sampling (step 3)."""
        alerts = self.judge.judge(closed, self.detectors)
        window_ns = self.assembler.window_ns
        for alert in alerts:
            if alert.status == "firing":
                w = alert.window
                self.flags.flag(w.service, w.operation, w.window_end_ns + FLAG_WINDOWS * window_ns)
        return alerts

    async def publish(self, alerts: Sequence[Alert]) -> None:
        """Anomalies table, then the alert topic, waiting for Kafka's ack of each message."""
        if not alerts:
            return
        write = table_writer(self.store, ANOMALIES_TABLE, anomaly_columns)
        await asyncio.to_thread(write, alerts, "alerts-" + alert_token(alerts))
        published = [a for a in alerts if a.publish]
        await self._send_acked([(a.window.service, a.to_message()) for a in published])
        for alert in published:
            metrics.ALERTS.labels(alert.status, alert.finding.severity).inc()
            log.info("alert %s v%d: %s", alert.alert_id, alert.version, alert.summary)

    async def _send_acked(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Send ``(key, message)`` pairs to the alert topic and wait for every ack."""
        try:
            pending = [
                await self.alerts.send(key=key.encode(), value=json.dumps(message).encode())
                for key, message in messages
            ]
            for delivery in pending:
                await delivery
        except Exception as exc:  # any send failure: retry the whole close
            raise SinkUnavailable(f"alert topic: {exc}") from exc

    # -- step 4 ---------------------------------------------------------------------------
    def group_incidents(
        self, alerts: list[Alert], closed: Sequence[ClosedWindow]
    ) -> tuple[list[Alert], list[IncidentRecord]]:
        """Alerts tagged with their incident, and the incident records of this close."""
        if self.incidents is None:
            return alerts, []
        starts = {w.window_start_ns for w in closed}
        return self.incidents.process(alerts, starts, self.detectors)

    async def publish_incidents(self, records: Sequence[IncidentRecord]) -> None:
        """Incidents table, then the alert topic (keyed by incident id), acked."""
        if not records:
            return
        write = table_writer(self.store, INCIDENTS_TABLE, incident_columns)
        token = ",".join(f"{r.incident.incident_id}:{r.incident.version}" for r in records)
        await asyncio.to_thread(write, records, "incidents-" + token[:200])
        await self._send_acked([(r.incident.incident_id, r.to_message()) for r in records])
        for r in records:
            metrics.INCIDENTS.labels(r.status).inc()
            log.info("incident %s v%d: %s", r.incident.incident_id, r.incident.version, r.summary)

    # -- step 3 ---------------------------------------------------------------------------
    def _prune_flags(self) -> None:
        """Drop flags whose last window every series has closed (step 3).

        A span of such a window is late for windows; it would be kept by its flag
        only if its trace arrived later still, and the flag would otherwise stay
        until ``max_flags`` pushes it out, slowing every sampling decision.
        """
        watermark = self.assembler.watermark.global_ns()
        if watermark is not None:
            self.flags.prune(watermark - self.assembler.lateness_ns - self.assembler.window_ns)


def idle_close_seconds(window_seconds: int) -> float:
    """How long a silent input partition holds the window watermark back.

    At least one window (the assembler's default), and at least twice the group
    session timeout: a worker killed without leaving the group keeps its input
    partitions until the broker times its session out, and its partitions' spans
    must not turn late meanwhile.

    >>> idle_close_seconds(60), idle_close_seconds(10)
    (60.0, 30.0)
    """
    return max(float(window_seconds), 2 * SESSION_TIMEOUT_MS / 1000)


def window_token(closed: Sequence[ClosedWindow]) -> str:
    """The ClickHouse dedup token of one close: the same windows, the same token."""
    digest = hashlib.blake2b(json.dumps([w.to_dict() for w in closed]).encode(), digest_size=8)
    return f"windows-{len(closed)}-{digest.hexdigest()}"


def alert_token(alerts: Sequence[Alert]) -> str:
    return ",".join(f"{a.alert_id}:{a.version}" for a in alerts)[:200]
