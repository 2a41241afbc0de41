"""A real ClickHouse server process for tests of the native store, with fault injection.

:class:`LocalClickHouse` runs ``infra/clickhouse/server.sh run`` (the one place
that knows the server's configuration) as a
:class:`~pipeline.local.process.LocalProcess`: a free port kept across
restarts, ``kill()`` with SIGKILL, ``restart()`` on the same data. Debian's
package is ClickHouse 18.16: good for the native protocol, too old for
spanstream's schema.

    with LocalClickHouse(tmp_path / "ch") as server:
        store = open_store(server.url)
        server.restart()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from pipeline.errors import ServiceUnavailable
from pipeline.local.process import LocalProcess, free_port, port_open

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = REPO_ROOT / "infra" / "clickhouse" / "server.sh"
SERVER_BIN = Path(os.environ.get("CLICKHOUSE_SERVER_BIN", "/usr/sbin/clickhouse-server"))
#: Seconds a start may take before the server counts as unavailable.
READY_TIMEOUT = 60.0
#: Seconds a stop or kill may take.
STOP_TIMEOUT = 30.0


def clickhouse_installed() -> bool:
    """True when the clickhouse-server binary is present (``server.sh install``)."""
    return os.access(SERVER_BIN, os.X_OK)


class LocalClickHouse(LocalProcess):
    """One clickhouse-server process with its config, data and logs in ``data_dir``."""

    name = "ClickHouse server"

    def __init__(self, data_dir: str | os.PathLike[str], port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        super().__init__(
            self.data_dir / "log" / "stdout.log",
            ready_timeout=READY_TIMEOUT,
            stop_timeout=STOP_TIMEOUT,
        )
        self.port = port

    @property
    def url(self) -> str:
        """``clickhouse://default@127.0.0.1:PORT/default``; valid once started."""
        if self.port is None:
            raise ServiceUnavailable("LocalClickHouse has not been started yet")
        return f"clickhouse://default@127.0.0.1:{self.port}/default"

    def start(self, ready_timeout: float | None = None) -> Self:
        """Start the server and wait until it answers ``SELECT 1``."""
        if not clickhouse_installed():
            raise ServiceUnavailable(
                f"{SERVER_BIN} missing: run {SERVER_SCRIPT.relative_to(REPO_ROOT)} install"
            )
        if self.port is None:
            self.port = free_port()
        return super().start(ready_timeout)

    def command(self) -> list[str]:
        args = ["bash", str(SERVER_SCRIPT), "run", "--data-dir", str(self.data_dir)]
        return [*args, "--port", str(self.port), "--http-port", str(free_port())]

    def ready(self) -> bool:
        if self.port is None or not port_open("127.0.0.1", self.port):
            return False
        from clickhouse_driver import Client
        from clickhouse_driver.errors import Error

        client = Client("127.0.0.1", port=self.port, connect_timeout=1, send_receive_timeout=5)
        try:
            return bool(client.execute("SELECT 1") == [(1,)])
        except (Error, OSError, EOFError):
            return False
        finally:
            client.disconnect()

    def log_tail(self, lines: int = 20) -> str:
        """The tail of stdout (the launcher's messages) and of the server's error log."""
        errors = self.data_dir / "log" / "server.err.log"
        tail = super().log_tail(lines)
        if errors.exists():
            err_lines = errors.read_text(errors="replace").splitlines()[-lines:]
            tail += f"\n{errors}:\n" + "\n".join(err_lines)
        return tail
