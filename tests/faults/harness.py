"""The fault rig: per-test topics, one real ``spanstream worker``, the generator, and the counts.

A :class:`Rig` is what each fault scenario drives. It creates the test's own
topics (names from ``topics/topics.yaml`` roles, with a unique suffix) on a
real broker, runs ``spanstream generate`` in simulated mode with a manifest,
starts/kills :class:`~pipeline.local.worker.LocalWorker` processes on one
chdb directory, samples the worker's RSS in the background, and at the end
reads ``otel_traces``, ``spanstream_red_metrics FINAL`` and the DLQ to build
the :class:`~tests.harness.accounting.Accounting` row.

Every wait polls a condition with a deadline; nothing sleeps to synchronize.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from pipeline.enrich import operation_for
from pipeline.generate.manifest import Manifest, ManifestSpan, read_manifest
from pipeline.kafka_client import KafkaSecurity
from pipeline.local.worker import READ_BACK_LIMITS, LocalWorker
from pipeline.settings import load_settings
from pipeline.topics.admin import TopicAdmin
from pipeline.topics.declarations import DEFAULT_TOPICS_FILE, load_declarations
from pipeline.topics.reconcile import apply
from tests.faults import diagnose, kafka_reads
from tests.harness.accounting import (
    Accounting,
    account,
    append_result,
    expected_spans,
    reference_windows,
    windows_by_start,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Traces per scenario stream (about 20 spans each): ~100k spans by default.
TRACES = int(os.environ.get("SPANSTREAM_FAULTS_TRACES", "5000"))
#: The simulated stream's start; windows are 10 s, lateness 5 s (fast to close).
START_TIME = "2024-05-01T00:00:00Z"
WINDOW_S = 10
#: Generous but finite deadlines (s) on this loaded 2-core machine.
DRAIN_TIMEOUT = float(os.environ.get("SPANSTREAM_FAULTS_DRAIN_TIMEOUT", "300"))
STALL_S = 45.0
WINDOWS_TIMEOUT = 120.0
POLL_S = 0.2

#: What the window stage logs when it reads back partials its consumer skipped.
SKIPPED_PARTIALS = "were skipped by the consumer"
#: What the worker logs when its ingest thread dies (older app.py: the process stays up).
INGEST_DIED = ("Exception in thread", "ingest loop died")

BASE_ENV = {
    # every trace kept: unique_out = distinct stored rows, the simplest exact check
    "SPANSTREAM_BASELINE_RATE": "1.0",
    "SPANSTREAM_WINDOW_SECONDS": str(WINDOW_S),
    "SPANSTREAM_ALLOWED_LATENESS_SECONDS": "5",
    "SPANSTREAM_DECISION_WAIT_SECONDS": "2",
}


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, poll_s: float = POLL_S
) -> float:
    """Poll ``condition`` every ``poll_s`` until true; returns the seconds it took."""
    began = time.monotonic()
    deadline = began + timeout
    while True:
        if condition():
            return time.monotonic() - began
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll_s)


@dataclass
class Topics:
    input: str
    dlq: str
    alerts: str
    partials: str
    group: str

    def env(self) -> dict[str, str]:
        return {
            "SPANSTREAM_INPUT_TOPIC": self.input,
            "SPANSTREAM_DLQ_TOPIC": self.dlq,
            "SPANSTREAM_ALERT_TOPIC": self.alerts,
            "SPANSTREAM_PARTIALS_TOPIC": self.partials,
            "SPANSTREAM_GROUP": self.group,
        }


@dataclass
class Restart:
    """One worker (re)start: when, and how long until stored rows grew again."""

    at: float
    recovery_s: float | None = None


@dataclass
class Rig:
    """Topics, generator, worker and accounting for one scenario."""

    bootstrap: str
    workdir: Path
    results_file: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    #: the module each worker runs (``tests.harness.outage`` for store outages)
    entry: str = "pipeline.cli"
    topics: Topics = field(init=False)
    #: every worker of the rig, each on its own chdb directory; ``worker`` is the first
    workers: list[LocalWorker] = field(default_factory=list)
    worker: LocalWorker = field(init=False)
    manifests: list[Manifest] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    peak_rss: int = 0
    faults: int = 0
    #: spans the test sent itself, beside the generator's manifests (see :meth:`finish`)
    extra_sent: set[tuple[str, str]] = field(default_factory=set)
    began: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        sfx = uuid.uuid4().hex[:8]
        self.topics = Topics(f"in-{sfx}", f"dlq-{sfx}", f"al-{sfx}", f"pa-{sfx}", f"g-{sfx}")
        self.env = {**BASE_ENV, **self.topics.env(), **self.env_overrides}
        settings = load_settings({**self.env, "SPANSTREAM_KAFKA": self.bootstrap})
        decls = load_declarations(DEFAULT_TOPICS_FILE, settings)
        result = apply(TopicAdmin(self.bootstrap, timeout=30, security=KafkaSecurity()), decls)
        assert all(i.action == "ok" for i in result.final), result
        self._up: set[int] = set()
        self.worker = self.add_worker()
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)
        self._sampler.start()

    # -- generator --------------------------------------------------------------------------
    def generate_cmd(
        self, name: str, count: int, *extra: str, start: str | None = START_TIME
    ) -> list[str]:
        """``spanstream generate``: simulated from ``start``, or paced by the wall clock
        (``start=None``); ``extra`` options come last and override ``--rate``."""
        manifest = self.workdir / f"{name}.manifest.jsonl"
        clock = ["--start-time", start] if start is not None else []
        return [
            sys.executable, "-m", "pipeline.cli", "generate",
            "--bootstrap", self.bootstrap, "--topic", self.topics.input,
            *clock, "--count", str(count), "--rate", "50",
            "--manifest", str(manifest), "--progress-seconds", "60", *extra,
        ]  # fmt: skip

    def generate(
        self, name: str, count: int, *extra: str, start: str | None = START_TIME
    ) -> Manifest:
        """Run ``spanstream generate`` to completion; its manifest joins the input set."""
        cmd = self.generate_cmd(name, count, *extra, start=start)
        env = {**os.environ, **READ_BACK_LIMITS}  # whole tables come back
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        return self._add_manifest(name)

    @contextmanager
    def generating(
        self, name: str, count: int, *extra: str, start: str | None = START_TIME
    ) -> Iterator[subprocess.Popen[bytes]]:
        """Run the generator in the background; on exit wait for it and read its manifest."""
        log = (self.workdir / f"{name}.generate.log").open("wb")
        proc = subprocess.Popen(
            self.generate_cmd(name, count, *extra, start=start), stdout=log, stderr=log
        )
        try:
            yield proc
            assert proc.wait(300) == 0, (self.workdir / f"{name}.generate.log").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            log.close()
        self._add_manifest(name)

    def _add_manifest(self, name: str) -> Manifest:
        manifest = read_manifest(self.workdir / f"{name}.manifest.jsonl")
        assert manifest.summary, f"{name}: manifest has no summary line"
        self.manifests.append(manifest)
        return manifest

    def expected(self) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set(self.extra_sent)
        for m in self.manifests:
            out |= expected_spans(m)
        return out

    def spans(self) -> list[ManifestSpan]:
        return [s for m in self.manifests for s in m.spans()]

    # -- worker -----------------------------------------------------------------------------
    @property
    def chdb_dir(self) -> Path:
        """The first worker's store directory (open it only while that worker is down)."""
        return self.workdir / "chdb"

    def add_worker(self) -> LocalWorker:
        """A further worker in the same group (not started), with its own chdb directory.

        chdb allows one process per directory, so workers cannot share a store: the
        outcome is read from every store and combined (see :meth:`stored`).
        """
        n = len(self.workers)
        suffix = str(n) if n else ""
        worker = LocalWorker(
            self.workdir / f"worker{suffix}",
            bootstrap=self.bootstrap,
            store_url=f"chdb:{self.workdir / f'chdb{suffix}'}",
            env=self._worker_env(),
            entry=self.entry,
        )
        self.workers.append(worker)
        return worker

    def _worker_env(self) -> dict[str, str]:
        if not self.entry.startswith("tests."):
            return self.env
        # A test-only entry (the outage rig) is imported from this checkout, whatever the cwd.
        path = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {**self.env, "PYTHONPATH": os.pathsep.join(path)}

    def start(self, worker: LocalWorker | None = None) -> Restart:
        """Start a worker; the recovery time is measured by :meth:`await_recovery`."""
        worker = worker or self.worker
        restart = Restart(time.monotonic())
        worker.start()
        self._up.add(self.workers.index(worker))
        self.restarts.append(restart)
        return restart

    def kill(self, worker: LocalWorker | None = None) -> None:
        """SIGKILL a worker (a fault)."""
        worker = worker or self.worker
        self._up.discard(self.workers.index(worker))
        worker.kill()
        self.faults += 1

    def stop(self, worker: LocalWorker) -> int:
        """SIGTERM a worker and wait for its clean exit (scaling down, not a fault)."""
        self._up.discard(self.workers.index(worker))
        return worker.stop()

    def owned(self, worker: LocalWorker) -> int:
        """Input partitions the worker owns: its lag gauge has one sample per partition."""
        try:
            return len(worker.metric_samples("spanstream_consumer_lag_messages"))
        except OSError:
            return 0

    def wait_balanced(self, timeout: float) -> float:
        """Poll until every running worker owns a share and together they own all."""
        partitions = len(self.high_watermarks(self.topics.input))

        def balanced() -> bool:
            owned = [self.owned(w) for w in self.up()]
            return min(owned) > 0 and sum(owned) == partitions

        return wait_until(balanced, timeout, f"{len(self.up())} workers sharing the partitions")

    def up(self) -> list[LocalWorker]:
        """The workers started and neither killed nor stopped since."""
        return [w for i, w in enumerate(self.workers) if i in self._up]

    def await_recovery(self, restart: Restart, before: int, total: int, timeout: float) -> None:
        """Poll until stored spans exceed ``before`` (or reach ``total``): progress resumed."""

        def grew() -> bool:
            n = self.safe_count()
            return n is not None and (n > before or n >= total)

        wait_until(grew, timeout, "progress after restart")
        restart.recovery_s = time.monotonic() - restart.at

    def check_ingest_alive(self) -> None:
        """Fail with the traceback when an ingest thread or a worker died unasked."""
        for worker in self.up():
            text = worker.log_file.read_text(errors="replace")
            current = text.rsplit("--- start ", 1)[-1]
            if any(marker in current for marker in INGEST_DIED):
                lines = [ln.split("] ", 3)[-1].strip() for ln in current.splitlines()]
                at = next(i for i, ln in enumerate(lines) if any(m in ln for m in INGEST_DIED))
                trace = " ".join(ln for ln in lines[at : at + 40] if ln not in ("", "^"))
                raise AssertionError(f"ingest died in worker pid {worker.pid}: {trace[:3000]}")
            if not worker.running:
                raise AssertionError(f"worker exited: {worker.log_tail(30)}")

    def safe_count(self) -> int | None:
        """Distinct stored spans (summed over the stores of running workers), or None
        while an endpoint does not answer."""
        self.check_ingest_alive()
        total = 0
        for worker in self.up():
            try:
                total += int(
                    worker.query("SELECT uniqExact(TraceId, SpanId) FROM otel_traces")[0][0]
                )
            except OSError:
                return None
            except Exception as exc:  # ServiceUnavailable while starting
                if "query failed" in str(exc) or not worker.running:
                    return None
                raise
        return total

    def store_rows(self, worker: LocalWorker, sql: str) -> list[list[Any]]:
        """Rows of ``sql`` from one worker's store: via the worker, or opened directly."""
        if worker.running:
            return worker.query(sql, timeout=300)
        cmd = [sys.executable, "-m", "pipeline.cli", "query", "--direct", "--url", worker.store_url]
        cmd.append(sql)
        env = {**os.environ, **READ_BACK_LIMITS}  # whole tables come back
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def all_rows(self, sql: str) -> list[list[Any]]:
        """``sql`` on every store that was ever written, rows concatenated."""
        return [row for w in self.workers if w.starts for row in self.store_rows(w, sql)]

    def union_count(self) -> int:
        """Distinct stored spans over every store."""
        return len({(t, s) for t, s, _ in self.stored()})

    def wait_progress(self, at_least: int, timeout: float, what: str) -> int:
        """Poll until at least ``at_least`` distinct spans are stored; returns the count seen."""
        seen = [0]

        def enough() -> bool:
            n = self.safe_count()  # fails when a worker died unasked
            seen[0] = n or 0
            return n is not None and n >= at_least

        wait_until(enough, timeout, what)
        return seen[0]

    def drain(self, timeout: float = DRAIN_TIMEOUT, stall_s: float = STALL_S) -> int:
        """Wait until every expected span is stored, or the count stalls for ``stall_s``."""
        total = len(self.expected())
        last = (-1, time.monotonic())

        def done() -> bool:
            nonlocal last
            n = self.safe_count()
            if n is None:
                return False
            if n >= total and len(self.workers) > 1:
                n = self.union_count()  # the stores' sum counts a span stored twice twice
            if n >= total:
                return True
            if n != last[0]:
                last = (n, time.monotonic())
            return time.monotonic() - last[1] > stall_s

        wait_until(done, timeout, f"{total} spans stored")
        return self.safe_count() or 0

    def wait_windows(
        self, timeout: float = WINDOWS_TIMEOUT, stall_s: float = 30.0, extra: int = 0
    ) -> None:
        """Wait until Requests+LateSpans cover every span (``extra`` more than the
        manifests hold), or stop growing for ``stall_s``."""
        total = len(self.spans()) + extra
        last = (-1, time.monotonic())

        def done() -> bool:
            nonlocal last
            n = sum(r + lt for r, lt in self.windows().values())
            if n >= total:
                return True
            if n != last[0]:
                last = (n, time.monotonic())
            # No window yet: the stage may still be joining its group or in its startup
            # hold after a restart; only the overall timeout ends that wait.
            return n > 0 and time.monotonic() - last[1] > stall_s

        wait_until(done, timeout, "windows closed")

    def _sample_rss(self) -> None:
        while not self._sampling.is_set():
            # the process may go away between the check and the read
            with contextlib.suppress(OSError, ValueError):
                self.peak_rss = max([self.peak_rss, *(w.rss_bytes() for w in self.workers)])
            self._sampling.wait(0.5)

    # -- reading the outcome ---------------------------------------------------------------
    def stored(self) -> list[tuple[str, str, int]]:
        """(TraceId, SpanId, rows) per store: a span stored in two stores appears twice."""
        rows = self.all_rows(
            "SELECT TraceId, SpanId, count() FROM otel_traces GROUP BY TraceId, SpanId"
        )
        return [(str(t), str(s), int(n)) for t, s, n in rows]

    def dup_rows_within_stores(self) -> int:
        rows = self.all_rows("SELECT count() - uniqExact(TraceId, SpanId) FROM otel_traces")
        return sum(int(r[0]) for r in rows)

    def op_map(self) -> dict[tuple[str, str], str]:
        """(service, raw span name) -> the operation the enricher derives, from stored rows."""
        rows = self.all_rows(
            "SELECT ServiceName, SpanName, any(SpanAttributes) FROM otel_traces "
            "GROUP BY ServiceName, SpanName"
        )
        return {(str(s), str(n)): operation_for(str(n), dict(a)) for s, n, a in rows}

    def windows(self) -> dict[tuple[str, str, int], tuple[int, int]]:
        """(Requests, LateSpans) per window over every store.

        A window a crashed owner wrote is closed again by its next owner, in that
        owner's store; both rows must agree. Disagreeing copies are summed, so they
        show up as a mismatch against the reference instead of being hidden.
        """
        copies: dict[tuple[str, str, int], set[tuple[int, int]]] = {}
        for s, o, w, r, lt in self.all_rows(
            "SELECT ServiceName, SpanName, toInt64(toUnixTimestamp64Milli(WindowStart)), "
            "sum(Requests), sum(LateSpans) FROM spanstream_red_metrics FINAL GROUP BY 1, 2, 3"
        ):
            copies.setdefault((str(s), str(o), int(w)), set()).add((int(r), int(lt)))
        return {
            key: (sum(r for r, _ in values), sum(lt for _, lt in values))
            for key, values in copies.items()
        }

    def diagnose_windows(
        self,
        reference: dict[tuple[str, str, int], int],
        windows: dict[tuple[str, str, int], tuple[int, int]],
    ) -> list[dict[str, Any]]:
        """Evidence for mismatched series-windows (:mod:`tests.faults.diagnose`); [] if none."""
        settings = load_settings({**self.env, "SPANSTREAM_KAFKA": self.bootstrap})
        return diagnose.explain(
            diagnose.mismatched(reference, windows),
            reference,
            self.all_rows,
            self.read_topic,
            self.topics.partials,
            settings.windows_changelog_topic,
        )

    def logged(self, text: str) -> int:
        """Lines containing ``text`` over every worker's log."""
        return sum(
            w.log_file.read_text(errors="replace").count(text)
            for w in self.workers
            if w.log_file.exists()
        )

    def read_topic(self, topic: str, timeout: float = 60.0) -> list[Any]:
        """Every record of ``topic`` (confluent_kafka Messages), read up to the high watermarks."""
        return kafka_reads.read_topic(self.bootstrap, topic, timeout)

    def high_watermarks(self, topic: str) -> dict[int, int]:
        return kafka_reads.high_watermarks(self.bootstrap, topic)

    def committed(self) -> dict[int, tuple[int, str]]:
        """The group's committed (offset, metadata) per input partition."""
        return kafka_reads.committed(self.bootstrap, self.topics.group, self.topics.input)

    def wait_committed_to_end(self, timeout: float, what: str) -> None:
        """Wait until the group has committed every input partition to its end."""

        def all_committed() -> bool:
            committed = self.committed()
            ends = self.high_watermarks(self.topics.input)
            return all(committed[p][0] == end for p, end in ends.items())

        wait_until(all_committed, timeout, what)

    def producer(self) -> Producer:
        return Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 5})

    # -- the row ------------------------------------------------------------------------------
    def finish(
        self,
        scenario: str,
        *,
        dlq: int | None = None,
        compare_windows: bool = True,
        notes: str = "",
        also_sent: set[tuple[str, str]] | None = None,
        also_reference: dict[tuple[str, str, int], int] | None = None,
        recovery_s: float | None = None,
        fold_service: Callable[[str], str] | None = None,
        **extra: Any,
    ) -> Accounting:
        """Drain, read everything back, write the row to the results file and return it.

        ``also_sent`` and ``also_reference`` add spans the test produced itself (not
        through the generator) to the input set and their windows to the reference;
        ``recovery_s`` is the scenario's own recovery measure (default: the worst restart);
        ``fold_service`` renames stored windows' services before the comparison (their
        counts summed), for series whose name the worker chose.
        """
        self.extra_sent |= also_sent or set()
        self.drain()
        windows = reference = None
        if compare_windows:
            self.wait_windows(extra=sum((also_reference or {}).values()))
            ops = self.op_map()
            reference = reference_windows(
                self.spans(), WINDOW_S, op=lambda s: ops.get((s.service, s.span_name), s.span_name)
            )
            for key, n in (also_reference or {}).items():
                reference[key] = reference.get(key, 0) + n
            windows = self.windows()
            if fold_service is not None:
                windows = _folded(windows, fold_service)
        if windows is not None and reference is not None:
            extra.setdefault("windows_by_start", windows_by_start(reference, windows))
            extra["window_diagnosis"] = self.diagnose_windows(reference, windows)
        if dlq is None:
            dlq = len(self.read_topic(self.topics.dlq))
        recoveries = [r.recovery_s for r in self.restarts[1:] if r.recovery_s is not None]
        acc = account(
            scenario,
            self.expected(),
            self.stored(),
            dlq=dlq,
            windows=windows,
            reference=reference,
            recovery_s=recovery_s if recovery_s is not None else max(recoveries, default=None),
            peak_rss_mb=round(self.peak_rss / 2**20, 1),
            faults=self.faults,
            duration_s=round(time.monotonic() - self.began, 1),
            notes=notes,
            extra={
                "recoveries_s": [round(r, 2) for r in recoveries],
                "worker_starts": sum(w.starts for w in self.workers),
                "partials_reread": self.logged(SKIPPED_PARTIALS),
                **extra,
            },
        )
        append_result(self.results_file, acc)
        print("\n" + json.dumps(json.loads(acc.to_json()), indent=1))
        return acc

    def close(self) -> None:
        self._sampling.set()
        self._sampler.join(5)
        for worker in self.workers:
            if worker.running:
                worker.stop()
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 15000})
        t = self.topics
        try:
            futures = admin.delete_topics(
                [t.input, t.dlq, t.alerts, t.partials], operation_timeout=15
            )
            for future in futures.values():
                future.result(15)
        except Exception:  # cleanup only: a broker killed by the test may be gone
            pass


def _folded(
    windows: dict[tuple[str, str, int], tuple[int, int]], fold: Callable[[str], str]
) -> dict[tuple[str, str, int], tuple[int, int]]:
    """``windows`` with each service renamed by ``fold``, colliding counts summed."""
    out: dict[tuple[str, str, int], tuple[int, int]] = {}
    for (service, op, start), (requests, late) in windows.items():
        key = (fold(service), op, start)
        r, lt = out.get(key, (0, 0))
        out[key] = (r + requests, lt + late)
    return out
