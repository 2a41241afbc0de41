"""The Faust app of a worker: topics, tables, the ``assemble`` agent and the timers.

A thin shell around :class:`~pipeline.windows.stage.WindowStage`: the agent
hands each partials record to :meth:`~WindowStage.take_in` and acks it after,
the ``close`` timer calls :meth:`~WindowStage.close`. Why each Faust setting
and workaround exists is in :mod:`pipeline.faust`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import faust
from faust.types import TP

from pipeline.clock import Clock
from pipeline.errors import ServiceUnavailable
from pipeline.faust.gaps import STALL_CHECK_SECONDS, StallWatch
from pipeline.faust.readback import ReadBack
from pipeline.faust.tables import OwnedView
from pipeline.incidents.desk import GraphSource, IncidentConfig, IncidentDesk
from pipeline.incidents.kept import KeptSpanAttributes
from pipeline.ingest.kafka_config import SESSION_TIMEOUT_MS
from pipeline.judge import WindowJudge
from pipeline.kafka_client import faust_kwargs
from pipeline.query import QueryBusy, QueryRefused, QueryRunner
from pipeline.sampling.anomaly import AnomalyFlags
from pipeline.settings import Settings
from pipeline.slo.spec import SloSet
from pipeline.slo.stage import SloStage
from pipeline.store.base import QueryError, Store
from pipeline.web_guard import WebGuard, middleware
from pipeline.windows.assembler import WindowAssembler
from pipeline.windows.stage import Record, WindowStage, idle_close_seconds

log = logging.getLogger(__name__)

#: How often the ``close`` timer looks for windows the watermark passed.
CLOSE_CHECK_SECONDS = 1.0
#: No Faust codec on anything read from Kafka (workaround 4 in :mod:`pipeline.faust`).
RAW: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}


class WindowApp:
    """The Faust app with the window stage in it; ``beside`` runs the ingest thread."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        flags: AnomalyFlags,
        queries: QueryRunner,
        *,
        datadir: str,
        graph: GraphSource | None = None,
        slos: SloSet | None = None,
    ) -> None:
        self.settings, self.queries = settings, queries
        self.app = _faust_app(settings, datadir)
        self._tables(settings, slos)
        self.assembler = WindowAssembler(
            settings.window_seconds,
            settings.allowed_lateness_seconds,
            clock,
            idle_close_seconds=idle_close_seconds(settings.window_seconds),
            store=self.window_view,
            partials_queued=self._partials_queued,
        )
        desk = None
        if settings.incidents:
            config = IncidentConfig(
                settings.incident_gap_windows,
                settings.incident_max_hops,
                settings.incident_min_firings,
            )
            desk = IncidentDesk(
                settings.window_seconds * 1_000_000_000, graph, config, KeptSpanAttributes(store)
            )
        self.stage = WindowStage(
            assembler=self.assembler,
            judge=WindowJudge(),
            flags=flags,
            store=store,
            windows=self.window_view,
            detectors=self.detector_view,
            dlq=self.dlq_topic,
            alerts=self.alerts_topic,
            settled=self._settled,
            incidents=desk,
            slo=self._slo_stage(settings, store, slos),
        )
        self.readback = ReadBack(settings)
        self.stalls = StallWatch(settings.partials_topic)
        self._owned_before: set[int] = set()
        app = self.app
        app.agent(self.partials_topic, name="assemble")(self._assemble)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.timer(STALL_CHECK_SECONDS)(self.settle_stalled)
        app.timer(CLOSE_CHECK_SECONDS)(self.stage.close)

        # Faust binds a page handler as a View method (view, request); a bound method
        # would lose ``view``, so a plain function forwards to it.
        async def query_page(view: Any, request: Any) -> Any:
            return await self._query_page(view, request)

        app.page("/query")(query_page)

    def _tables(self, s: Settings, slos: SloSet | None) -> None:
        """The topics (raw bytes) and the state tables with their owned views (``slo``
        only with SLOs)."""
        app, n = self.app, s.partials_partitions
        self.partials_topic = app.topic(s.partials_topic, **_BYTES)
        self.alerts_topic = app.topic(s.alert_topic, **_BYTES)
        self.dlq_topic = app.topic(s.dlq_topic, **_BYTES)
        opts: dict[str, Any] = {"partitions": n, "use_partitioner": True, **_TYPES}
        self.windows = app.Table("windows", **opts)
        self.detectors = app.Table("detectors", **opts)
        self.window_view = OwnedView(self.windows, n, self._owned, "windows")
        self.detector_view = OwnedView(self.detectors, n, self._owned, "detectors")
        self.slo_view: OwnedView | None = None
        if slos is not None and slos.slos:
            self.slo_table = app.Table("slo", **opts)
            self.slo_view = OwnedView(self.slo_table, n, self._owned, "slo")

    def _slo_stage(self, s: Settings, store: Store, slos: SloSet | None) -> SloStage | None:
        if self.slo_view is None or slos is None:
            return None
        return SloStage(
            slos=slos,
            window_ns=s.window_seconds * 1_000_000_000,
            table=self.slo_view,
            store=store,
            partials=self.partials_topic,
            alerts=self.alerts_topic,
            partitions=s.partials_partitions,
        )

    def beside(self, start: Callable[[], None], stop: Callable[[], None]) -> None:
        """Run ``start`` when the app has started and ``stop`` (in a thread) when it stops."""

        class Beside(faust.Service):
            async def on_start(self) -> None:
                start()

            async def on_stop(self) -> None:
                await asyncio.to_thread(stop)

        self.app.service(Beside)

    # -- workaround 1: manual acks ----------------------------------------------------------
    async def _assemble(self, stream: Any) -> AsyncIterator[tuple[str, str]]:
        manual = stream.noack()
        async for event in manual.events():
            record = _record(event.message)
            read_back = await self.readback.skipped_before(record)  # workaround 2
            for skipped in read_back:
                await self.stage.take_in(skipped)
            await self.readback.settle(self.app, event.message, read_back)
            series = await self.stage.take_in(record)
            await manual.ack(event)
            if series is not None:
                yield series

    async def _on_assigned(self, _app: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        """Faust's signal after each rebalance, with this worker's whole assignment."""
        (assigned,) = args
        topic = self.settings.partials_topic
        self.readback.assigned({tp.partition for tp in assigned if tp.topic == topic})

    async def settle_stalled(self) -> None:
        """Workaround 2: release commits Faust holds for offsets already merged."""
        await self.stalls.settle(self.app.consumer, self.readback.next_offset)

    # -- workaround 3: the owned-partition view -------------------------------------------
    def _partials_queued(self) -> bool:
        """An owned partials partition holds records not taken in yet (its high watermark
        as of the consumer's last fetch is past the next offset to take in)."""
        topic = self.settings.partials_topic
        for partition in self._owned():
            next_offset = self.readback.next_offset(partition)
            if next_offset is None:
                continue
            try:
                high = self.app.consumer.highwater(TP(topic, partition))
            except Exception:  # no consumer or no fetch yet: nothing known to be queued
                continue
            if high is not None and high > next_offset:
                return True
        return False

    def _owned(self) -> set[int]:
        actives = self.app.assignor.assigned_actives()
        return {tp.partition for tp in actives if tp.topic == self.settings.partials_topic}

    def _settled(self) -> bool:
        """False while Faust rebalances or recovers tables; reload series after a change."""
        if self.app.rebalancing or self.app.in_recovery:
            return False
        owned = self._owned()
        if owned != self._owned_before:
            self._owned_before = owned
            self.assembler.reload()
            log.info("window stage owns partials partitions %s", sorted(owned))
        return True

    # -- the /query page ------------------------------------------------------------------
    async def _query_page(self, web: Any, request: Any) -> Any:
        sql = request.query.get("sql", "")
        try:
            body = await self.queries.run(sql)
        except (QueryRefused, QueryError) as exc:
            return web.json({"error": str(exc)}, status=400)
        except (QueryBusy, ServiceUnavailable) as exc:
            return web.json({"error": str(exc)}, status=503)
        return web.bytes(body, content_type="application/json")


def _faust_app(s: Settings, datadir: str) -> faust.App:
    return faust.App(
        s.windows_app_id,
        **faust_kwargs(s.kafka_bootstrap, s.kafka_security),
        store="memory://",
        datadir=datadir,
        topic_partitions=s.partials_partitions,
        table_standby_replicas=0,
        producer_acks=-1,
        # Same failover time as the ingest consumer (Faust's default is 60 s).
        broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
        broker_heartbeat_interval=3.0,
        web_port=s.web_port,
        web_bind=s.web_bind,
        # Every route (ours and Faust's own) passes the token and Host check first.
        web_application_options={"middlewares": [middleware(WebGuard.of(s))]},
        topic_allow_declare=True,
        **RAW,
    )


_TYPES: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
_BYTES: dict[str, Any] = {**_TYPES, **RAW}


def _record(message: Any) -> Record:
    """A partials record from a Faust :class:`~faust.types.Message`."""
    return Record(message.topic, message.partition, message.offset, message.key, message.value)
