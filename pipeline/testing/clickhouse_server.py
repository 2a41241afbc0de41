"""A real ClickHouse server process for tests of the native store, with fault injection.

:class:`LocalClickHouse` drives ``infra/clickhouse/server.sh`` (the one place
that knows the server's configuration) and adds what tests need: a free port
kept across restarts, ``kill()`` with SIGKILL, ``restart()`` on the same data.
Debian's package is ClickHouse 18.16: good for the native protocol, too old
for spanstream's schema.

    with LocalClickHouse(tmp_path / "ch") as server:
        store = open_store(server.url)
        server.restart()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from pipeline.errors import ServiceUnavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = REPO_ROOT / "infra" / "clickhouse" / "server.sh"
SERVER_BIN = Path(os.environ.get("CLICKHOUSE_SERVER_BIN", "/usr/sbin/clickhouse-server"))
#: Seconds a start may take before the server counts as unavailable.
READY_TIMEOUT = 60.0
#: Seconds a stop or kill may take.
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clickhouse_installed() -> bool:
    """True when the clickhouse-server binary is present (``server.sh install``)."""
    return os.access(SERVER_BIN, os.X_OK)


def _process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class LocalClickHouse:
    """One clickhouse-server process with its config and data in ``data_dir``."""

    def __init__(self, data_dir: str | os.PathLike[str], port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port

    @property
    def url(self) -> str:
        """``clickhouse://default@127.0.0.1:PORT/default``; valid once started."""
        if self.port is None:
            raise ServiceUnavailable("LocalClickHouse has not been started yet")
        return f"clickhouse://default@127.0.0.1:{self.port}/default"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else None."""
        try:
            pid = int((self.data_dir / "server.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _process_alive(pid) else None

    def start(self) -> LocalClickHouse:
        """Start the server and wait until it answers ``SELECT 1``."""
        if not clickhouse_installed():
            raise ServiceUnavailable(
                f"{SERVER_BIN} missing: run {SERVER_SCRIPT.relative_to(REPO_ROOT)} install"
            )
        if self.port is None:
            self.port = free_port()
        self._script("start", timeout=READY_TIMEOUT + 10)
        return self

    def stop(self) -> None:
        """Stop gracefully (SIGTERM; the script escalates to SIGKILL)."""
        self._script("stop", timeout=STOP_TIMEOUT + 10)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and wait until it is gone."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _process_alive(pid):
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"ClickHouse pid {pid} survived SIGKILL")
            time.sleep(0.05)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        self.start()

    def _script(self, command: str, timeout: float) -> None:
        env = {**os.environ, "READY_TIMEOUT": str(int(READY_TIMEOUT))}
        args = ["bash", str(SERVER_SCRIPT), command, "--data-dir", str(self.data_dir)]
        args += ["--port", str(self.port), "--http-port", str(free_port())]
        try:
            result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise ServiceUnavailable(f"server.sh {command} took over {timeout:.0f}s") from None
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["(no output)"]
            raise ServiceUnavailable(f"ClickHouse {command} failed: {lines[-1]}")

    def __enter__(self) -> LocalClickHouse:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
