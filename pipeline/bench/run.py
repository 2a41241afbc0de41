"""One benchmark run: the broker, the phases in order, and the clean-up."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from pipeline.bench.inprocess import in_process_rates
from pipeline.bench.kafka import create_topics, delete_run, fill, measure_ceiling
from pipeline.bench.options import BenchNames, BenchOptions, log
from pipeline.bench.report import CEILING_DECODER, BenchResult
from pipeline.bench.worker import measure_pipeline


def _clean_up(bootstrap: str, names: BenchNames) -> None:
    try:
        deleted = delete_run(bootstrap, names)
    except Exception as exc:  # never hide the run's own result or error
        log.warning("could not delete the run's topics %s*: %s", names.prefix, exc)
    else:
        log.info("deleted topics %s and the run's groups", deleted)


@contextlib.contextmanager
def _broker(bootstrap: str | None, workdir: Path) -> Iterator[tuple[str, str]]:
    """``bootstrap`` as given, else a LocalKafka started in ``workdir``; yields (addr, label)."""
    if bootstrap:
        yield bootstrap, f"Kafka at {bootstrap}"
        return
    from pipeline.local.kafka import LocalKafka

    kafka = LocalKafka(workdir / "kafka")
    log.info("no --bootstrap/SPANSTREAM_KAFKA: starting a local broker in %s", kafka.data_dir)
    kafka.start()
    try:
        yield kafka.bootstrap, f"local broker {kafka.bootstrap}"
    finally:
        kafka.stop()


def run_bench(options: BenchOptions, bootstrap: str | None = None) -> BenchResult:
    """Fill a new topic, measure the ceiling, then the pipeline; clean up unless ``keep_data``."""
    from pipeline.otlp.decode import PROTOBUF_BACKEND
    from pipeline.settings import load_settings

    workdir = Path(tempfile.mkdtemp(prefix="spanstream-bench-"))
    names = BenchNames.for_run()
    log.info("run %s in %s", names.prefix, workdir)
    failed = True
    try:
        with _broker(bootstrap, workdir) as (address, label):
            # A broker that does not answer here has nothing of this run to clean up.
            partitions = create_topics(address, names)
            try:
                filled = fill(address, names.input, options)
                log.info("ceiling: bare aiokafka consumer + %s", CEILING_DECODER)
                load = [os.getloadavg()[0]]
                ceiling, sample = measure_ceiling(
                    address, names.input, names.ceiling_group, filled, options
                )
                in_process = in_process_rates(sample)
                load.append(os.getloadavg()[0])
                pipeline = measure_pipeline(address, names, filled, workdir, options)
                load.append(os.getloadavg()[0])
                failed = False
            finally:
                if not options.keep_data and bootstrap:
                    _clean_up(address, names)
    finally:
        if options.keep_data or (failed and any(workdir.iterdir())):
            # A failed run keeps its directory: the worker's and the broker's logs are there.
            log.info("kept data in %s (topics %s*)", workdir, names.prefix)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return BenchResult(
        options=options,
        broker=label,
        partitions=partitions,
        filled=filled,
        ceiling=ceiling,
        pipeline=pipeline,
        in_process=in_process,
        protobuf_backend=PROTOBUF_BACKEND,
        machine={
            "cpus": float(os.cpu_count() or 0),
            "load_before_ceiling": load[0],
            "load_before_pipeline": load[1],
            "load_after": load[2],
        },
        decision_wait_s=load_settings().decision_wait_seconds,
        max_buffered_traces=options.max_buffered_traces or load_settings().max_buffered_traces,
        run=names.prefix,
    )


def default_bootstrap(environ: Mapping[str, str] | None = None) -> str | None:
    """``SPANSTREAM_KAFKA`` when set (an existing broker), else None (start a local one).

    >>> default_bootstrap({}), default_bootstrap({"SPANSTREAM_KAFKA": "k:9092"})
    (None, 'k:9092')
    """
    env = os.environ if environ is None else environ
    return env.get("SPANSTREAM_KAFKA") or None
