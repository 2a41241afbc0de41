"""``spanstream worker``: run one pipeline worker (scale out by starting more in the same group)."""

from __future__ import annotations

import argparse
import gc
import logging
from typing import Any

from pipeline.settings import load_settings

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``worker`` subcommand."""
    parser = subparsers.add_parser(
        "worker",
        help="consume OTLP spans from Kafka and run the whole pipeline",
        description=(
            "Consume the Collector's kafka exporter topic, tail-sample traces into otel_traces, "
            "aggregate RED windows per service/operation, score them and publish alerts. "
            "Start more workers with the same SPANSTREAM_GROUP to share the partitions. "
            "Settings: SPANSTREAM_* environment variables (README, pipeline/settings/)."
        ),
    )
    parser.add_argument(
        "--url", help="store URL (default: SPANSTREAM_CLICKHOUSE or chdb:data/chdb)"
    )
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: SPANSTREAM_KAFKA)")
    parser.add_argument("--web-port", type=int, help="HTTP port for /query (default 6066)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (default 9464; 0 = off)")
    parser.add_argument(
        "--datadir", default="data/faust", help="Faust's local state directory (default data/faust)"
    )
    parser.add_argument(
        "--no-migrate", action="store_true", help="do not apply pending migrations at start"
    )
    parser.set_defaults(func=run)


#: Allocations between two young-generation collections (CPython's default: 700).
GC_YOUNG_THRESHOLD = 100_000


def tune_gc() -> None:
    """Collect cyclic garbage less often, and never scan what start-up allocated.

    A worker holds hundreds of thousands of live objects (traces waiting for
    their decision) and allocates a container per span attribute map; with
    CPython's defaults the collector walked that heap so often that it took
    more time than decoding (``spanstream bench``, docs/performance.md). The
    pipeline makes little cyclic garbage, so collecting every 100,000
    allocations costs little memory; ``gc.freeze`` moves the objects of the
    app's start-up (modules, Faust) out of every later collection.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def run(args: argparse.Namespace) -> int:
    """Check topics, migrate, then run until SIGTERM/SIGINT."""
    import faust

    from pipeline import metrics
    from pipeline.app import Pipeline, load_slo_file
    from pipeline.locked import LockedStore
    from pipeline.migrate import migrate
    from pipeline.store import open_store
    from pipeline.topics.admin import TopicAdmin
    from pipeline.topics.declarations import DEFAULT_TOPICS_FILE, load_declarations
    from pipeline.topics.reconcile import prepare_worker_topics

    settings = load_settings(
        clickhouse_url=args.url,
        kafka_bootstrap=args.bootstrap,
        web_port=args.web_port,
        metrics_port=args.metrics_port,
    )
    slos = load_slo_file(settings.slo_file)  # an invalid file stops here, in one line
    if slos.slos:
        log.info("%d SLOs from %s", len(slos.slos), settings.slo_file)
    decls = load_declarations(DEFAULT_TOPICS_FILE, settings)
    admin = TopicAdmin(settings.kafka_bootstrap, security=settings.kafka_security)
    created = prepare_worker_topics(admin, decls)
    if created:
        log.info("created the window stage's changelog topics %s", created)
    store = open_store(settings.clickhouse_url)
    if not args.no_migrate:
        log.info(migrate(store, ttl_days=settings.ttl_days).summary())
    metrics.serve(settings.metrics_port, settings.metrics_bind)
    pipeline = Pipeline(settings, LockedStore(store), datadir=args.datadir, slos=slos)
    tune_gc()
    worker = faust.Worker(pipeline.app, loglevel="INFO", quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:  # Faust ends its worker with sys.exit
        if exc.code not in (0, None):
            raise
    finally:
        store.close()
    return 1 if pipeline.ingest_failed else 0
