"""A real ``spanstream worker`` process for end-to-end and fault tests.

Each worker runs in its own process on free local ports, with its own Faust
data dir and log file, exactly as a user starts it. Tests talk to it as a user
would: rows come from its ``/query`` endpoint (the worker holds the embedded
chdb directory, so nothing else may open it while it runs), and it is stopped
with SIGTERM or killed with SIGKILL.

    with LocalWorker(tmp_path / "w1", bootstrap=kafka, store_url=f"chdb:{tmp_path}/ch") as w:
        w.wait_for(lambda: w.count("otel_traces") >= 1000, timeout=120)
        w.kill()
        w.start()

Helpers for the tests around it: :func:`unique_names` (per-test topics and group),
:func:`prepare_topics` (``spanstream topics apply`` plus the window stage's
changelog topics), :func:`run_generate` (``spanstream generate`` as a process)
and :func:`consume` (read a topic back with a deadline).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.errors import ServiceUnavailable
from pipeline.kafka_client import KafkaSecurity, librdkafka_config
from pipeline.testing.kafka_broker import REPO_ROOT, free_port

#: Seconds a worker may take from start until its /query endpoint answers.
READY_TIMEOUT = 90.0
#: Seconds a graceful stop may take before SIGKILL.
STOP_TIMEOUT = 60.0
#: /query limits for tests, which read whole tables back (the defaults refuse such results).
TEST_QUERY_LIMITS = {
    "SPANSTREAM_QUERY_TIMEOUT_SECONDS": "300",
    "SPANSTREAM_QUERY_MAX_ROWS": "100000000",
    "SPANSTREAM_QUERY_MAX_BYTES": "10000000000",
    "SPANSTREAM_QUERY_MAX_MEMORY_BYTES": "4000000000",
    "SPANSTREAM_QUERY_MAX_THREADS": "2",
}


class LocalWorker:
    """One ``spanstream worker`` subprocess; ``env`` adds ``SPANSTREAM_*`` settings.

    ``entry`` is the module run with ``python -m``: ``pipeline.cli`` (the
    ``spanstream`` command) unless a test wraps it, e.g. ``pipeline.testing.outage``.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        bootstrap: str,
        store_url: str,
        env: Mapping[str, str] | None = None,
        entry: str = "pipeline.cli",
    ) -> None:
        self.workdir = Path(workdir)
        self.entry = entry
        self.store_url = store_url
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.web_port = free_port()
        self.metrics_port = free_port()
        self.log_file = self.workdir / "worker.log"
        self._env = {
            **os.environ,
            "SPANSTREAM_KAFKA": bootstrap,
            "SPANSTREAM_CLICKHOUSE": store_url,
            "SPANSTREAM_WEB_PORT": str(self.web_port),
            "SPANSTREAM_METRICS_PORT": str(self.metrics_port),
            # Tests read whole tables back through /query (every stored span id, say).
            **TEST_QUERY_LIMITS,
            **(env or {}),
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, ready_timeout: float = READY_TIMEOUT) -> None:
        """Start the process and wait until its /query endpoint answers."""
        if self.running:
            raise RuntimeError("worker already running")
        cmd = [sys.executable, "-m", self.entry, "worker", "--datadir", str(self.workdir)]
        with self.log_file.open("ab") as log:
            log.write(f"--- start {self.starts + 1} ---\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd, env=self._env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise ServiceUnavailable(f"worker exited during start: {self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.2)
        self.kill()
        raise ServiceUnavailable(f"worker not ready after {ready_timeout:.0f}s: {self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait for a clean exit (SIGKILL after ``timeout``); returns the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would end it."""
        self._signal(signal.SIGKILL, STOP_TIMEOUT)

    def _signal(self, sig: signal.Signals, timeout: float) -> int:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc is not None else 0
        os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(timeout)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def rss_bytes(self) -> int:
        """Resident memory of the worker process now (0 when not running)."""
        if self.pid is None or not self.running:
            return 0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # -- what a user sees -----------------------------------------------------------------
    def query(self, sql: str, timeout: float = 60.0) -> list[list[Any]]:
        """Rows of a reading statement, through the worker's /query endpoint."""
        url = f"http://127.0.0.1:{self.web_port}/query?" + urllib.parse.urlencode({"sql": sql})
        token = self._env.get("SPANSTREAM_WEB_TOKEN", "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=timeout) as response:
                rows: list[list[Any]] = json.loads(response.read())["rows"]
        except urllib.error.HTTPError as exc:
            raise ServiceUnavailable(f"query failed ({exc.code}): {exc.read()[:500]!r}") from None
        return rows

    def count(self, table: str, where: str = "1") -> int:
        return int(self.query(f"SELECT count() FROM {table} WHERE {where}")[0][0])

    def metric(self, name: str) -> float:
        """Sum of a Prometheus metric over its labels (0 when absent)."""
        return sum(self.metric_samples(name).values())

    def metric_samples(self, name: str) -> dict[str, float]:
        """A Prometheus metric's samples by their label text (``'{policy="error"}'``)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
                labels, value = line[len(name) :].rsplit(" ", 1)
                samples[labels.strip()] = samples.get(labels.strip(), 0.0) + float(value)
        return samples

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str = "") -> None:
        """Poll ``condition`` until it holds; fail with the log tail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise AssertionError(f"worker died waiting for {what}: {self.log_tail()}")
            try:
                if condition():
                    return
            except (OSError, ServiceUnavailable):
                pass  # endpoint not up yet or briefly busy
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

    def _answers(self) -> bool:
        try:
            self.query("SELECT 1", timeout=2)
        except (OSError, ServiceUnavailable):
            return False
        return True

    def __enter__(self) -> LocalWorker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- around the worker ------------------------------------------------------------------


def unique_names(prefix: str = "e2e") -> dict[str, str]:
    """``SPANSTREAM_*`` topic and group names unique to one test (shared brokers never mix)."""
    tag = f"{prefix}-{uuid.uuid4().hex[:10]}"
    return {
        "SPANSTREAM_INPUT_TOPIC": f"{tag}-spans",
        "SPANSTREAM_DLQ_TOPIC": f"{tag}-dlq",
        "SPANSTREAM_ALERT_TOPIC": f"{tag}-alerts",
        "SPANSTREAM_PARTIALS_TOPIC": f"{tag}-partials",
        "SPANSTREAM_GROUP": tag,
    }


def prepare_topics(bootstrap: str, env: Mapping[str, str], timeout: float = 30.0) -> None:
    """Create the declared topics, as ``spanstream topics apply`` does, changelogs included.

    The window stage's Faust changelog topics must exist before the worker starts
    (ones Faust creates itself may be missing from its producer's first metadata,
    and the first table write then crashes the assemble agent); they are created
    here if the declarations do not name them.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    from pipeline.settings import load_settings
    from pipeline.topics.admin import TopicAdmin
    from pipeline.topics.declarations import DEFAULT_TOPICS_FILE, load_declarations
    from pipeline.topics.reconcile import apply

    settings = load_settings({**env, "SPANSTREAM_KAFKA": bootstrap})
    security = settings.kafka_security
    admin_ = TopicAdmin(bootstrap, security=security)
    result = apply(admin_, load_declarations(DEFAULT_TOPICS_FILE, settings))
    if any(item.action != "ok" for item in result.final):
        raise ServiceUnavailable(f"topics not ready: {result}")
    admin = AdminClient(librdkafka_config(bootstrap, security))
    n = settings.partials_partitions
    names = [f"{settings.group}-windows-{t}-changelog" for t in ("windows", "detectors")]
    listed = admin.list_topics(timeout=10).topics
    missing = [
        NewTopic(name, n, 1, config={"cleanup.policy": "compact"})
        for name in names
        if name not in listed
    ]
    if missing:
        for future in admin.create_topics(missing, operation_timeout=timeout).values():
            future.result(timeout)
    deadline = time.monotonic() + timeout
    while True:
        listed = admin.list_topics(timeout=10).topics
        if all(len(getattr(listed.get(name), "partitions", {})) == n for name in names):
            return
        if time.monotonic() > deadline:
            raise ServiceUnavailable("changelog topics missing from the broker's metadata")
        time.sleep(0.1)


def delete_topics(bootstrap: str, env: Mapping[str, str], timeout: float = 30.0) -> None:
    """Delete every topic named after the test's group (Faust's own topics included)."""
    from confluent_kafka.admin import AdminClient

    from pipeline.settings import load_settings

    group = env["SPANSTREAM_GROUP"]
    admin = AdminClient(librdkafka_config(bootstrap, load_settings(env).kafka_security))
    ours = [t for t in admin.list_topics(timeout=10).topics if group in t]
    if ours:
        for future in admin.delete_topics(ours, operation_timeout=timeout).values():
            future.result(timeout)


def run_generate(
    bootstrap: str,
    topic: str,
    args: Sequence[str],
    timeout: float = 300.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``spanstream generate`` to ``topic`` as a user runs it (``env`` adds settings);
    raises if it fails."""
    cmd = [sys.executable, "-m", "pipeline.cli", "generate", "--bootstrap", bootstrap]
    cmd += ["--topic", topic, *args]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        raise AssertionError(f"generate failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def consume(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Any]], bool],
    timeout: float = 60.0,
    security: KafkaSecurity | None = None,
) -> list[Any]:
    """Messages of ``topic`` from the start until ``until(messages)`` holds (or ``timeout``).

    Returns confluent-kafka ``Message`` objects; fails with what was read so far.
    """
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            **librdkafka_config(bootstrap, security or KafkaSecurity()),
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(messages):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: {len(messages)} messages after {timeout:.0f}s")
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None:
                    messages.append(msg)
    finally:
        consumer.close()
    return messages
