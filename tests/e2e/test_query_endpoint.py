"""A real worker's web and metrics ports under the attacks of issue #12.

One worker (with a token) answers a local browser's requests, hostile SQL, a
huge result and an endless query the way a user would meet them, while spans
keep flowing in; SIGTERM during an endless query still stops it. The figures
(time to refusal, worker RSS) are printed for the README (``pytest -s``).
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ServiceUnavailable
from pipeline.local.worker import LocalWorker, delete_topics, prepare_topics, unique_names
from tests.harness.streams import run_generate

pytestmark = pytest.mark.e2e

TOKEN = "e2e-token-3f9c"
TIMEOUT = 8  # SPANSTREAM_QUERY_TIMEOUT_SECONDS of the worker under test


@pytest.fixture
def worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[LocalWorker]:
    env = {
        **unique_names("query"),
        "SPANSTREAM_WEB_TOKEN": TOKEN,
        "SPANSTREAM_DECISION_WAIT_SECONDS": "1",
        "SPANSTREAM_BASELINE_RATE": "1.0",
        # The shipped defaults, not the harness's generous ones.
        "SPANSTREAM_QUERY_TIMEOUT_SECONDS": str(TIMEOUT),
        "SPANSTREAM_QUERY_MAX_ROWS": "100000",
        "SPANSTREAM_QUERY_MAX_BYTES": "50000000",
        "SPANSTREAM_QUERY_MAX_MEMORY_BYTES": "500000000",
        "SPANSTREAM_QUERY_MAX_THREADS": "1",
    }
    prepare_topics(kafka_bootstrap, env)
    w = LocalWorker(
        tmp_path / "w", bootstrap=kafka_bootstrap, store_url=f"chdb:{tmp_path / 'chdb'}", env=env
    )
    w.start()
    try:
        yield w
    finally:
        w.stop()
        delete_topics(kafka_bootstrap, env)


def get(worker: LocalWorker, sql: str, **headers: str) -> tuple[int, bytes]:
    """GET /query with exactly these headers (a browser's, an attacker's)."""
    conn = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=120)
    path = "/query?" + urllib.parse.urlencode({"sql": sql})
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def authed(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", **extra}


def test_a_browser_page_cannot_use_the_port(worker: LocalWorker) -> None:
    assert get(worker, "SELECT 1")[0] == 401  # CSRF: the page has no token
    assert get(worker, "SELECT 1", **authed(Host="rebind.attacker.test:6066"))[0] == 403
    assert get(worker, "SELECT 1", **authed(Origin="https://evil.example"))[0] == 403
    assert get(worker, "SELECT 1", **authed())[0] == 200


def test_the_metrics_port_listens_on_loopback_only(worker: LocalWorker) -> None:
    port = f"{worker.metrics_port:04X}"
    listening = [
        line.split()[1]
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for line in Path(table).read_text().splitlines()[1:]
        if line.split()[1].endswith(":" + port) and line.split()[3] == "0A"
    ]
    assert listening == ["0100007F:" + port]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM file('/proc/self/environ', 'LineAsString')",
        "SELECT 'x' INTO OUTFILE '/tmp/spanstream-e2e-outfile' TRUNCATE FORMAT TSV",
        "WITH 1 AS x INSERT INTO otel_traces (TraceId) SELECT 'a'",
        "SELECT * FROM url('http://127.0.0.1:{metrics}/metrics', 'LineAsString')",
    ],
)
def test_hostile_sql_is_refused(worker: LocalWorker, sql: str) -> None:
    status, body = get(worker, sql.format(metrics=worker.metrics_port), **authed())
    assert status == 400, body
    assert not Path("/tmp/spanstream-e2e-outfile").exists()


def test_a_huge_result_and_an_endless_query_are_bounded(worker: LocalWorker) -> None:
    before = worker.rss_bytes()
    start = time.monotonic()
    status, body = get(worker, "SELECT number, toString(number) FROM numbers(10000000)", **authed())
    huge = time.monotonic() - start
    assert status == 400 and b"max rows" in body
    print(
        f"\n10M-row SELECT: refused after {huge:.2f}s, RSS {before >> 20} -> "
        f"{worker.rss_bytes() >> 20} MiB"
    )

    kept_before = worker.metric("spanstream_spans_kept_total")
    generator = threading.Thread(
        target=run_generate,
        args=(
            worker.env["SPANSTREAM_KAFKA"],
            worker.env["SPANSTREAM_INPUT_TOPIC"],
            ["--rate", "50", "--duration", str(TIMEOUT + 4), "--spans-per-trace", "3"],
        ),
    )
    generator.start()
    outcome: dict[str, Any] = {}

    def endless() -> None:
        t = time.monotonic()
        outcome["status"], outcome["body"] = get(
            worker, "SELECT count() FROM system.numbers", **authed()
        )
        outcome["seconds"] = time.monotonic() - t

    query = threading.Thread(target=endless)
    query.start()
    peak = 0
    while query.is_alive():  # inserts go on while the query runs
        peak = max(peak, worker.rss_bytes())
        query.join(0.2)
    kept_during = worker.metric("spanstream_spans_kept_total") - kept_before
    generator.join(120)
    assert outcome["status"] == 400 and b"Timeout" in outcome["body"]
    assert outcome["seconds"] < TIMEOUT + 5
    assert kept_during > 0
    print(
        f"count() FROM system.numbers: killed after {outcome['seconds']:.2f}s, "
        f"{kept_during:.0f} spans stored meanwhile, peak RSS {peak >> 20} MiB"
    )


def test_sigterm_stops_the_worker_during_a_long_query(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {**unique_names("query-stop"), "SPANSTREAM_QUERY_TIMEOUT_SECONDS": "600"}
    prepare_topics(kafka_bootstrap, env)
    w = LocalWorker(
        tmp_path / "w", bootstrap=kafka_bootstrap, store_url=f"chdb:{tmp_path / 'chdb'}", env=env
    )
    w.start()
    try:
        errors: list[BaseException] = []

        def endless() -> None:
            try:
                w.query("SELECT count() FROM system.numbers", timeout=600)
            except (OSError, ServiceUnavailable) as exc:
                errors.append(exc)

        query = threading.Thread(target=endless, daemon=True)
        query.start()
        seen: list[bool] = []
        # chdb names the thread pulling a query's result; inserts take milliseconds, so
        # seeing it on 5 polls in a row means the endless statement runs.
        w.wait_for(lambda: seen.append(_pulling(w)) or seen[-5:] == [True] * 5, 30, "query")
        start = time.monotonic()
        code = w.stop(timeout=60)
        stopped = time.monotonic() - start
        print(f"\nSIGTERM during an endless query: worker exited {code} after {stopped:.1f}s")
        assert code == 0 and stopped < 30
    finally:
        w.kill()
        delete_topics(kafka_bootstrap, env)


def _pulling(w: LocalWorker) -> bool:
    """True while a thread of the worker pulls a ClickHouse query's result."""
    if w.pid is None:
        return False
    names = [p.read_text().strip() for p in Path(f"/proc/{w.pid}/task").glob("*/comm")]
    return "QueryPullPipeEx" in names
