"""The one way a local service runs: :class:`LocalProcess`.

A subclass names the command (:meth:`LocalProcess.command`) and how to tell
that the service is ready (:meth:`LocalProcess.ready`); the base class starts
it in its own process group with stdout and stderr appended to ``log_file``,
polls ``ready`` until ``ready_timeout``, and stops it with SIGTERM, then
SIGKILL after ``stop_timeout``. Every failure names the process and ends with
the tail of its log.

>>> import sys, tempfile
>>> script = "print('hello', flush=True); import time; time.sleep(60)"
>>> class Echo(LocalProcess):
...     name = "echo"
...     def command(self): return [sys.executable, "-c", script]
...     def ready(self): return "hello" in self.log_file.read_text()
>>> with Echo(Path(tempfile.mkdtemp()) / "echo.log") as echo:
...     echo.running
True
>>> echo.running, echo.pid
(False, None)
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
from typing import Self

from pipeline.errors import ServiceUnavailable

#: Seconds between two readiness probes.
POLL_INTERVAL = 0.1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    """True when a TCP connection to ``host:port`` succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class LocalProcess:
    """One service subprocess with its output in ``log_file``; ``env`` adds to ours."""

    #: What error messages call the process.
    name = "process"

    def __init__(
        self,
        log_file: Path,
        *,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self.log_file = Path(log_file)
        self.env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The command line that runs the service in the foreground."""
        raise NotImplementedError

    def ready(self) -> bool:
        """One probe: True once the service answers."""
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, ready_timeout: float | None = None) -> Self:
        """Start the process and wait until :meth:`ready` (``ready_timeout`` seconds at most).

        Raises :class:`~pipeline.errors.ServiceUnavailable` with the log's tail if
        the process exits first or is not ready in time (it is killed then).
        """
        if self.running:
            raise ServiceUnavailable(f"{self.name} is already running (pid {self.pid})")
        command = self.command()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"--- start {self.starts + 1}: {' '.join(command)} ---\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        self._wait_ready(self.ready_timeout if ready_timeout is None else ready_timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.running:
                raise self.failure(f"exited with {self.returncode} during start")
            if time.monotonic() > deadline:
                self.kill()
                raise self.failure(f"not ready after {timeout:.0f}s (killed)")
            time.sleep(POLL_INTERVAL)

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM, wait for the exit (SIGKILL after ``timeout``); the exit code.

        A process that is not running returns its last exit code (0 if never started).
        """
        return self._signal(signal.SIGTERM, self.stop_timeout if timeout is None else timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would end it, and reap the process."""
        self._signal(signal.SIGKILL, self.stop_timeout)

    def restart(self) -> None:
        """Stop (if running) and start again with the same settings."""
        self.stop()
        self.start()

    def _signal(self, sig: signal.Signals, timeout: float) -> int:
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            # The whole group: a launcher script's children go with it.
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        return proc.returncode

    # -- state --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while it runs, else None."""
        return self._proc.pid if self._proc is not None and self.running else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log, for error messages."""
        if not self.log_file.exists():
            return "(no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def failure(self, what: str) -> ServiceUnavailable:
        """The error for ``what`` went wrong: the process, its log and the log's tail."""
        return ServiceUnavailable(f"{self.name} {what}; log {self.log_file}:\n{self.log_tail()}")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
