"""LocalProcess against real child processes: readiness, log capture, SIGTERM then SIGKILL."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import ServiceUnavailable
from pipeline.local.process import LocalProcess, free_port, port_open

#: Child scripts; each prints "ready" once it is up, then blocks.
SERVE = "print('ready', flush=True); import time; time.sleep(600)"
IGNORE_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(600)"
)
CRASH = "import sys; print('bad config: no such topic', flush=True); sys.exit(3)"
NEVER_READY = "print('starting', flush=True); import time; time.sleep(600)"


class Child(LocalProcess):
    name = "test child"

    def __init__(self, log_file: Path, script: str, **kwargs: float) -> None:
        super().__init__(log_file, env={"CHILD_MARK": "from-env"}, **kwargs)
        self.script = script

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script]

    def ready(self) -> bool:
        # A line of its own: the log's start marker quotes the script, "ready" included.
        lines = self.log_file.read_text().splitlines() if self.log_file.exists() else []
        return any(line.startswith("ready") for line in lines)


def test_start_waits_until_ready_and_stop_sends_sigterm(tmp_path: Path) -> None:
    child = Child(tmp_path / "logs" / "child.log", SERVE)
    with child:
        assert child.running and child.pid is not None
        assert child.starts == 1
    assert not child.running and child.pid is None
    assert child.returncode == -signal.SIGTERM
    log = child.log_file.read_text()
    assert log.startswith("--- start 1: ") and "ready" in log


def test_env_is_added_to_ours(tmp_path: Path) -> None:
    script = "import os; print('ready', os.environ['CHILD_MARK'], flush=True); input()"
    with Child(tmp_path / "c.log", script) as child:
        assert "ready from-env" in child.log_file.read_text()


def test_stop_escalates_to_sigkill_after_the_timeout(tmp_path: Path) -> None:
    child = Child(tmp_path / "c.log", IGNORE_TERM).start()
    assert child.stop(timeout=0.5) == -signal.SIGKILL
    assert not child.running


def test_kill_is_sigkill_and_restart_starts_again(tmp_path: Path) -> None:
    child = Child(tmp_path / "c.log", SERVE).start()
    first = child.pid
    child.kill()
    assert child.returncode == -signal.SIGKILL and child.pid is None
    child.restart()
    try:
        assert child.running and child.pid != first and child.starts == 2
        assert "--- start 2: " in child.log_file.read_text()
    finally:
        child.stop()


def test_exit_during_start_names_the_process_and_shows_the_log_tail(tmp_path: Path) -> None:
    child = Child(tmp_path / "c.log", CRASH)
    with pytest.raises(ServiceUnavailable) as caught:
        child.start()
    message = str(caught.value)
    assert message.startswith("test child exited with 3 during start")
    assert str(child.log_file) in message and "bad config: no such topic" in message


def test_not_ready_in_time_is_killed_and_reported(tmp_path: Path) -> None:
    child = Child(tmp_path / "c.log", NEVER_READY)
    with pytest.raises(ServiceUnavailable, match=r"test child not ready after 1s \(killed\)"):
        child.start(ready_timeout=1.0)
    assert not child.running and child.returncode == -signal.SIGKILL
    assert child.log_tail().splitlines()[-1] == "starting"


def test_a_second_start_while_running_is_refused(tmp_path: Path) -> None:
    with Child(tmp_path / "c.log", SERVE) as child:
        with pytest.raises(ServiceUnavailable, match="already running"):
            child.start()
        assert child.starts == 1


def test_stop_reaches_the_whole_process_group(tmp_path: Path) -> None:
    # A launcher script's children (a JVM under bash, say) must not outlive it.
    script = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        "print('ready', p.pid, flush=True); time.sleep(600)"
    )
    child = Child(tmp_path / "c.log", script).start()
    grandchild = int(child.log_file.read_text().splitlines()[-1].split()[1])
    child.stop()
    # The signal reached it with its parent's; its exit is not awaited by anyone here.
    deadline = time.monotonic() + 10
    while _alive(grandchild):
        assert time.monotonic() < deadline, f"pid {grandchild} outlived its group's SIGTERM"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_stop_before_start_is_a_no_op(tmp_path: Path) -> None:
    child = Child(tmp_path / "c.log", SERVE)
    assert child.stop() == 0
    assert child.log_tail() == "(no log)"


def test_free_port_is_free_and_port_open_sees_a_listener() -> None:
    import socket

    port = free_port()
    assert not port_open("127.0.0.1", port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert port_open("127.0.0.1", port)
