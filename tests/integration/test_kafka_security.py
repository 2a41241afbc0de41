"""Every Kafka client over SASL_SSL (SCRAM, client certificates, hostname verification) against
a real broker with certificates made here; a refused login fails with one line.

The broker (``SaslSslKafka``) has a SASL_SSL listener that requires a client
certificate; its users log in with SCRAM-SHA-256/512 or PLAIN. The clients get nothing
but ``SPANSTREAM_KAFKA_*`` settings, the passwords through ``..._FILE`` variables.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Producer

from pipeline.faust.partials_log import KafkaPartialsLog
from pipeline.generate.manifest import read_manifest
from pipeline.ingest.kafka_config import producer_config
from pipeline.kafka_client import aiokafka_kwargs
from pipeline.local.kafka import REPO_ROOT, kafka_installed
from pipeline.local.worker import LocalWorker, delete_topics, prepare_topics, unique_names
from pipeline.settings import load_settings
from tests.fixtures.kafka import unavailable
from tests.harness.kafka_sasl import SaslSslKafka
from tests.harness.streams import consume, run_generate
from tests.harness.tls import TlsFiles, make_tls_files

pytestmark = pytest.mark.integration

USER = "spanstream"
#: Seconds for a worker to count, store and close the windows of a small stream.
PROCESS_TIMEOUT = 120.0


@dataclass(frozen=True)
class SecureKafka:
    broker: SaslSslKafka
    tls: TlsFiles
    password_file: Path

    @property
    def bootstrap(self) -> str:
        return self.broker.sasl_ssl_bootstrap

    def env(self, mechanism: str = "SCRAM-SHA-512", **extra: str) -> dict[str, str]:
        """The settings a deployment sets: secrets as files, never values on a command line."""
        return {
            "SPANSTREAM_KAFKA": self.bootstrap,
            "SPANSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SPANSTREAM_KAFKA_SASL_MECHANISM": mechanism,
            "SPANSTREAM_KAFKA_SASL_USERNAME": USER,
            "SPANSTREAM_KAFKA_SASL_PASSWORD_FILE": str(self.password_file),
            "SPANSTREAM_KAFKA_SSL_CA_FILE": str(self.tls.ca),
            "SPANSTREAM_KAFKA_SSL_CERT_FILE": str(self.tls.client_cert),
            "SPANSTREAM_KAFKA_SSL_KEY_FILE": str(self.tls.client_key),
            "SPANSTREAM_KAFKA_SSL_KEY_PASSWORD_FILE": str(self.tls.client_key_password_file),
            **extra,
        }


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    if not kafka_installed():  # skips locally, fails under CI=true
        unavailable("Kafka jars or java missing: run infra/kafka/kafka.sh install")
    root = tmp_path_factory.mktemp("secure-kafka")
    tls = make_tls_files(root / "tls")
    password = secrets.token_urlsafe(16)
    password_file = root / "kafka-password"
    password_file.write_text(password + "\n")
    broker = SaslSslKafka(root / "kafka", tls=tls, users={USER: password})
    broker.start()
    try:
        yield SecureKafka(broker, tls, password_file)
    finally:
        broker.stop()


def cli(
    env: dict[str, str], *args: str, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        check=False,
    )


def test_worker_and_every_client_work_over_sasl_ssl(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    env = {
        **secure_kafka.env(),
        **unique_names("sec"),
        "SPANSTREAM_WINDOW_SECONDS": "10",
        "SPANSTREAM_ALLOWED_LATENESS_SECONDS": "5",
        "SPANSTREAM_DECISION_WAIT_SECONDS": "2",
    }
    bootstrap = secure_kafka.bootstrap
    settings = load_settings(env)
    security = settings.kafka_security
    # Admin: topics apply (TopicAdmin) and the changelogs (a bare AdminClient).
    prepare_topics(bootstrap, env)
    try:
        checked = cli(env, "topics", "check")
        assert checked.returncode == 0, checked.stderr
        manifest = tmp_path / "manifest.jsonl"
        with LocalWorker(
            tmp_path / "w1", bootstrap=bootstrap, store_url=f"chdb:{tmp_path / 'chdb'}", env=env
        ) as worker:
            start = str(int(time.time()) // 60 * 60 - 1800)
            run_generate(
                bootstrap,
                settings.input_topic,
                ["--start-time", start, "--count", "150", "--manifest", str(manifest)],
                env=env,
            )
            # A record no decoder takes: the ingest producer's dead-letter path.
            producer = Producer(producer_config(bootstrap, security))
            producer.produce(settings.input_topic, b"\x00not otlp", key=b"bad")
            assert producer.flush(30) == 0
            spans = read_manifest(manifest).summary["spans"]

            def processed() -> bool:
                windowed = worker.query(
                    "SELECT sum(Requests) + sum(LateSpans) FROM spanstream_red_metrics"
                )
                return (
                    worker.metric("spanstream_spans_in_total") >= spans > 0
                    and int(windowed[0][0] or 0) >= spans
                )

            # Ingest consumer and producer, then the Faust window stage closing windows.
            worker.wait_for(processed, PROCESS_TIMEOUT, "spans counted and windowed")
            assert worker.metric("spanstream_spans_in_total") == spans
            letters = consume(
                bootstrap, settings.dlq_topic, lambda got: len(got) >= 1, security=security
            )
            assert [m.key() for m in letters] == [b"bad"]

            # The partials reader, on the window stage's own group.
            log = KafkaPartialsLog(
                bootstrap, settings.partials_topic, settings.windows_app_id, security=security
            )
            assert log.read(0, range(0, 1))[0].offset == 0

            # aiokafka (the benchmark's ceiling consumer) with the same settings.
            assert asyncio.run(_first_with_aiokafka(bootstrap, settings.input_topic, env))

            tail = cli(env, "alerts", "tail", "--from-beginning", "--timeout", "2")
            assert tail.returncode == 0, tail.stderr
            password = secure_kafka.password_file.read_text().strip()
            assert password not in worker.log_file.read_text()
            cmdline = Path(f"/proc/{worker.pid}/cmdline").read_bytes().decode(errors="replace")
            assert password not in cmdline
    finally:
        delete_topics(bootstrap, env)


async def _first_with_aiokafka(bootstrap: str, topic: str, env: dict[str, str]) -> bytes:
    from aiokafka import AIOKafkaConsumer

    security = load_settings(env).kafka_security
    consumer = AIOKafkaConsumer(
        topic, **aiokafka_kwargs(bootstrap, security), auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
        return bytes(record.value or b"")
    finally:
        await consumer.stop()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_each_sasl_mechanism_logs_in(secure_kafka: SecureKafka, mechanism: str) -> None:
    done = cli(secure_kafka.env(mechanism), "topics", "list")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ("password", "SPANSTREAM_KAFKA_SASL_PASSWORD"),
        ("certificate", "SPANSTREAM_KAFKA_SSL_CERT_FILE"),
        ("ca", "SPANSTREAM_KAFKA_SSL_CA_FILE"),
    ],
)
def test_a_refused_worker_stops_at_once_with_one_line(
    secure_kafka: SecureKafka, tmp_path: Path, change: str, names: str
) -> None:
    env = {**secure_kafka.env(), **unique_names("sec"), "SPANSTREAM_CLICKHOUSE": "chdb:x"}
    if change == "password":
        wrong = tmp_path / "wrong"
        wrong.write_text("not-the-password\n")
        env["SPANSTREAM_KAFKA_SASL_PASSWORD_FILE"] = str(wrong)
    elif change == "certificate":
        for name in ("CERT_FILE", "KEY_FILE", "KEY_PASSWORD_FILE"):
            del env[f"SPANSTREAM_KAFKA_SSL_{name}"]
    else:
        other = make_tls_files(tmp_path / "other-ca")
        env["SPANSTREAM_KAFKA_SSL_CA_FILE"] = str(other.ca)
    began = time.monotonic()
    done = cli(env, "worker", "--datadir", str(tmp_path / "w"), timeout=60)
    assert time.monotonic() - began < 9  # sooner than the 10 s admin timeout
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("spanstream: error: Kafka at ")
    assert "refused the connection" in lines[0] and names in lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "check"],
        ["alerts", "tail", "--timeout", "2"],
        ["generate", "--count", "1", "--start-time", "0"],
    ],
    ids=["topics", "alerts-tail", "generate"],
)
def test_cli_commands_refused_say_so_in_one_line(
    secure_kafka: SecureKafka, tmp_path: Path, command: list[str]
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    env = secure_kafka.env(SPANSTREAM_KAFKA_SASL_PASSWORD_FILE=str(wrong))
    done = cli(env, *command, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "refused the connection" in lines[0]
    assert "SPANSTREAM_KAFKA_SASL_PASSWORD" in lines[0]
    assert "not-the-password" not in done.stderr
