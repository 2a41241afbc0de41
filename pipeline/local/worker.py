"""A throwaway ``spanstream worker`` process, as ``spanstream bench`` and ``evaluate`` run it.

Each worker runs in its own process on free local ports, with its own Faust
data dir and log file, exactly as a user starts it. Callers talk to it as a user
would: rows come from its ``/query`` endpoint (the worker holds the embedded
chdb directory, so nothing else may open it while it runs), and it is stopped
with SIGTERM or killed with SIGKILL.

    with LocalWorker(tmp_path / "w1", bootstrap=kafka, store_url=f"chdb:{tmp_path}/ch") as w:
        w.wait_for(lambda: w.count("otel_traces") >= 1000, timeout=120)
        w.kill()
        w.start()

Around it: :func:`unique_names` (per-run topics and group), :func:`prepare_topics`
(``spanstream topics apply`` plus the window stage's changelog topics) and
:func:`delete_topics`.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import ServiceUnavailable
from pipeline.kafka_client import librdkafka_config
from pipeline.local.process import LocalProcess, free_port

#: Seconds a worker may take from start until its /query endpoint answers.
READY_TIMEOUT = 90.0
#: Seconds a graceful stop may take before SIGKILL.
STOP_TIMEOUT = 60.0
#: /query limits for callers that read whole tables back (the defaults refuse such results).
READ_BACK_LIMITS = {
    "SPANSTREAM_QUERY_TIMEOUT_SECONDS": "300",
    "SPANSTREAM_QUERY_MAX_ROWS": "100000000",
    "SPANSTREAM_QUERY_MAX_BYTES": "10000000000",
    "SPANSTREAM_QUERY_MAX_MEMORY_BYTES": "4000000000",
    "SPANSTREAM_QUERY_MAX_THREADS": "2",
}


class LocalWorker(LocalProcess):
    """One ``spanstream worker`` subprocess; ``env`` adds ``SPANSTREAM_*`` settings.

    ``entry`` is the module run with ``python -m``: ``pipeline.cli`` (the
    ``spanstream`` command) unless a caller wraps it (the fault suite's outage rig).
    """

    name = "spanstream worker"

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
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.entry = entry
        self.store_url = store_url
        self.web_port = free_port()
        self.metrics_port = free_port()
        settings = {
            "SPANSTREAM_KAFKA": bootstrap,
            "SPANSTREAM_CLICKHOUSE": store_url,
            "SPANSTREAM_WEB_PORT": str(self.web_port),
            "SPANSTREAM_METRICS_PORT": str(self.metrics_port),
            **READ_BACK_LIMITS,
            **(env or {}),
        }
        super().__init__(
            self.workdir / "worker.log",
            env=settings,
            ready_timeout=READY_TIMEOUT,
            stop_timeout=STOP_TIMEOUT,
        )

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.entry, "worker", "--datadir", str(self.workdir)]

    def ready(self) -> bool:
        """The /query endpoint answers ``SELECT 1``."""
        try:
            self.query("SELECT 1", timeout=2)
        except (OSError, ServiceUnavailable):
            return False
        return True

    def rss_bytes(self) -> int:
        """Resident memory of the worker process now (0 when not running)."""
        if self.pid is None:
            return 0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    # -- what a user sees -----------------------------------------------------------------
    def query(self, sql: str, timeout: float = 60.0) -> list[list[Any]]:
        """Rows of a reading statement, through the worker's /query endpoint."""
        url = f"http://127.0.0.1:{self.web_port}/query?" + urllib.parse.urlencode({"sql": sql})
        token = self.env.get("SPANSTREAM_WEB_TOKEN", "")
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


# -- around the worker ------------------------------------------------------------------


def unique_names(prefix: str = "e2e") -> dict[str, str]:
    """``SPANSTREAM_*`` topic and group names unique to one test (shared brokers never mix)."""
    tag = f"{prefix}-{uuid.uuid4().hex[:10]}"
    return {
        "SPANSTREAM_INPUT_TOPIC": f"{tag}-spans",
        "SPANSTREAM_DLQ_TOPIC": f"{tag}-dlq",
        "SPANSTREAM_ALERT_TOPIC": f"{tag}-alerts",
        "SPANSTREAM_DELIVERY_DLQ_TOPIC": f"{tag}-alerts-dlq",
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
    tables = ("windows", "detectors", "slo")
    names = [f"{settings.group}-windows-{t}-changelog" for t in tables]
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
