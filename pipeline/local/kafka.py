"""A throwaway single-node Kafka broker, run from Maven Central jars.

:class:`LocalKafka` runs ``infra/kafka/kafka.sh run`` (the one place that knows
the broker's configuration) as a :class:`~pipeline.local.process.LocalProcess`,
so it is exactly the broker a developer gets from ``kafka.sh start``, on a free
port kept across restarts, with ``kill()`` (SIGKILL) and ``restart()`` on the
same port and data.

    with LocalKafka(tmp_path / "kafka") as kafka:
        produce_to(kafka.bootstrap)
        kafka.kill()
        kafka.restart()
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Self

from pipeline.errors import ServiceUnavailable
from pipeline.local.process import LocalProcess, free_port, port_open

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO_ROOT / "infra" / "kafka" / "kafka.sh"
#: Seconds a start may take before the broker counts as unavailable.
READY_TIMEOUT = 90.0
#: Seconds a graceful stop may take before SIGKILL.
STOP_TIMEOUT = 40.0


def kafka_libs_dir() -> Path:
    """Where ``kafka.sh install`` puts the broker jars (honours ``SPANSTREAM_CACHE``)."""
    out = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "libs"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def kafka_installed() -> bool:
    """True when the broker jars are installed and Java is on PATH."""
    return (kafka_libs_dir() / ".complete").is_file() and _on_path("java")


def _on_path(program: str) -> bool:
    return any(
        os.access(Path(d) / program, os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)
    )


class LocalKafka(LocalProcess):
    """One KRaft broker+controller JVM with its data and ``broker.log`` in ``data_dir``.

    ``port`` defaults to a free port chosen at the first :meth:`start` and kept
    for later restarts, so clients' bootstrap addresses stay valid.
    """

    name = "Kafka broker"

    def __init__(self, data_dir: str | os.PathLike[str], port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        super().__init__(
            self.data_dir / "broker.log", ready_timeout=READY_TIMEOUT, stop_timeout=STOP_TIMEOUT
        )
        self.port = port
        #: Seconds the last start took until the broker answered.
        self.start_seconds: float | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` for clients; only valid once started."""
        if self.port is None:
            raise ServiceUnavailable("LocalKafka has not been started yet")
        return f"127.0.0.1:{self.port}"

    def start(self, ready_timeout: float | None = None) -> Self:
        """Start the broker and wait until it answers metadata requests."""
        if not kafka_installed():
            raise ServiceUnavailable(
                f"Kafka jars or java missing (looked in {kafka_libs_dir()}): "
                f"run {KAFKA_SCRIPT.relative_to(REPO_ROOT)} install"
            )
        if self.port is None:
            self.port = free_port()
        began = time.monotonic()
        super().start(ready_timeout)
        self.start_seconds = time.monotonic() - began
        return self

    def command(self) -> list[str]:
        return ["bash", str(KAFKA_SCRIPT), "run", *self.script_options()]

    def script_options(self) -> list[str]:
        """The options of ``kafka.sh run`` and ``kafka.sh status``."""
        return ["--data-dir", str(self.data_dir), "--port", str(self.port)]

    def ready(self) -> bool:
        """The port accepts connections and ``kafka.sh status`` gets a metadata answer."""
        if self.port is None or not port_open("127.0.0.1", self.port):
            return False
        status = ["bash", str(KAFKA_SCRIPT), "status", "--data-dir", str(self.data_dir)]
        return subprocess.run(status, capture_output=True, timeout=30).returncode == 0
