"""A real single-node Kafka broker for tests and fault injection, run from Maven Central jars.

:class:`LocalKafka` drives ``infra/kafka/kafka.sh`` (the one place that knows the
broker's configuration), so a test gets exactly the broker a developer gets from
``kafka.sh start``. It adds what tests need on top: free ports, ``kill()`` with
SIGKILL and ``restart()`` on the same port and data.

    with LocalKafka(tmp_path / "kafka") as kafka:
        produce_to(kafka.bootstrap)
        kafka.kill()
        kafka.restart()

With ``tls`` (see :mod:`pipeline.testing.tls`) and ``users`` the broker also has a
SASL_SSL listener (SCRAM-SHA-256/512 and PLAIN for those users, client
certificates required) at :attr:`LocalKafka.sasl_ssl_bootstrap`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from pipeline.errors import ServiceUnavailable

if TYPE_CHECKING:
    from pipeline.testing.tls import TlsFiles

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO_ROOT / "infra" / "kafka" / "kafka.sh"
#: Seconds a start may take before the broker counts as unavailable.
READY_TIMEOUT = 90.0
#: Seconds a graceful stop or a kill may take.
STOP_TIMEOUT = 40.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def _process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class LocalKafka:
    """One KRaft broker+controller JVM with its data in ``data_dir``.

    ``port`` defaults to a free port chosen at the first :meth:`start` and kept
    for later restarts, so clients' bootstrap addresses stay valid.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int | None = None,
        *,
        tls: TlsFiles | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.tls = tls
        self.users = dict(users or {})
        self.sasl_ssl_port: int | None = None
        self.start_seconds: float | None = None

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the SASL_SSL listener; only with ``tls`` and once started."""
        if self.tls is None or self.sasl_ssl_port is None:
            raise ServiceUnavailable("LocalKafka has no SASL_SSL listener (started with tls?)")
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` for clients; only valid once started."""
        if self.port is None:
            raise ServiceUnavailable("LocalKafka has not been started yet")
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """The broker's log (stdout and stderr of the JVM)."""
        return self.data_dir / "broker.log"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs, else None."""
        try:
            pid = int((self.data_dir / "broker.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _process_alive(pid) else None

    def start(self) -> LocalKafka:
        """Start the broker and wait until it answers metadata requests."""
        if not kafka_installed():
            raise ServiceUnavailable(
                f"Kafka jars or java missing (looked in {kafka_libs_dir()}): "
                f"run {KAFKA_SCRIPT.relative_to(REPO_ROOT)} install"
            )
        if self.port is None:
            self.port = free_port()
        if self.tls is not None and self.sasl_ssl_port is None:
            self.sasl_ssl_port = free_port()
            self._write_users(self.tls.directory / "users")
        began = time.monotonic()
        self._script("start", timeout=READY_TIMEOUT + 30)
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, wait for exit; the script escalates to SIGKILL)."""
        self._script("stop", timeout=STOP_TIMEOUT + 10)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would, and wait until the process is gone."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _process_alive(pid):
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"Kafka pid {pid} survived SIGKILL for {STOP_TIMEOUT}s")
            time.sleep(0.05)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        self.start()

    def _script(self, command: str, timeout: float) -> None:
        env = {**os.environ, "READY_TIMEOUT": str(int(READY_TIMEOUT))}
        args = ["bash", str(KAFKA_SCRIPT), command, "--data-dir", str(self.data_dir)]
        args += ["--port", str(self.port)]
        if self.tls is not None:
            args += [
                "--sasl-ssl-port",
                str(self.sasl_ssl_port),
                "--tls-dir",
                str(self.tls.directory),
            ]
        try:
            result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise ServiceUnavailable(
                f"kafka.sh {command} did not finish in {timeout:.0f}s; log: {self.log_file}"
            ) from None
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["(no output)"]
            raise ServiceUnavailable(f"Kafka {command} failed: {lines[-1]} (log: {self.log_file})")

    def _write_users(self, path: Path) -> None:
        # kafka.sh reads the users from this file (SCRAM ones go to the storage format once).
        bad = [name for name in self.users if not name.isidentifier()]
        if bad:
            raise ValueError(f"user names must be identifiers: {bad}")
        path.touch(mode=0o600)
        path.write_text("".join(f"{name}={pw}\n" for name, pw in self.users.items()))

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
