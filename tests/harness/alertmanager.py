"""A real Prometheus Alertmanager as a local process, and the forwarder as another.

The binary comes from ``infra/alertmanager/build.sh`` (Go modules, cached in
``${SPANSTREAM_CACHE:-<repo>/.cache}/alertmanager/<version>/``). Its config is the
documented example, ``infra/alertmanager/alertmanager.yml``, with the receivers'
URLs pointed at a local :class:`~tests.harness.webhook.WebhookReceiver` and the
grouping delays shortened (:func:`local_config`): the routes, grouping and inhibition
under test are the documented ones.

    config = local_config(EXAMPLE_CONFIG, receiver.url, tmp_path / "am.yml")
    with LocalAlertmanager(config, tmp_path / "am") as am:
        am.url  # http://127.0.0.1:<port>, what SPANSTREAM_ALERTMANAGER_URL takes
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ServiceUnavailable
from pipeline.local.process import LocalProcess, free_port, port_open

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER_DIR = REPO_ROOT / "infra" / "alertmanager"
#: The documented config (docs/alerting.md).
EXAMPLE_CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"
#: The version pinned in infra/alertmanager/build.sh.
ALERTMANAGER_VERSION = "v0.35.0"
#: The receivers' base URL in the example config, replaced by the test receiver's.
EXAMPLE_RECEIVER_BASE = "http://127.0.0.1:9099"
STOP_TIMEOUT = 15.0


def alertmanager_binary() -> Path:
    """The built ``alertmanager``; :class:`ServiceUnavailable` if build.sh has not run."""
    cache = Path(os.environ.get("SPANSTREAM_CACHE") or REPO_ROOT / ".cache")
    path = cache / "alertmanager" / ALERTMANAGER_VERSION / "bin" / "alertmanager"
    if not os.access(path, os.X_OK):
        raise ServiceUnavailable(f"{path} is not built: run infra/alertmanager/build.sh")
    return path


def alertmanager_built() -> bool:
    try:
        alertmanager_binary()
    except ServiceUnavailable:
        return False
    return True


def local_config(source: Path, receiver_base: str, out: Path, *, group_wait: str = "1s") -> Path:
    """``source`` with receivers at ``receiver_base`` and short group delays, written to ``out``.

    Every route's ``group_wait``/``group_interval`` becomes ``group_wait`` (Alertmanager
    sends a group's news no sooner than that); nothing else changes.
    """
    config = yaml.safe_load(source.read_text())
    _shorten(config["route"], group_wait)
    text = yaml.safe_dump(config, sort_keys=False).replace(EXAMPLE_RECEIVER_BASE, receiver_base)
    out.write_text(text)
    return out


def _shorten(route: dict[str, Any], delay: str) -> None:
    for key in ("group_wait", "group_interval"):
        if key in route:
            route[key] = delay
    for child in route.get("routes", []):
        _shorten(child, delay)


class LocalAlertmanager(LocalProcess):
    """One Alertmanager on a free port, clustering off, state in ``data_dir``."""

    name = "alertmanager"

    def __init__(self, config: Path, data_dir: Path, *, ready_timeout: float = 30.0) -> None:
        self.config = config
        self.data_dir = data_dir
        self.port = free_port()
        super().__init__(
            data_dir / "alertmanager.log", ready_timeout=ready_timeout, stop_timeout=STOP_TIMEOUT
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(alertmanager_binary()),
            f"--config.file={self.config}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # no gossip port: one instance
        ]

    def ready(self) -> bool:
        if not port_open("127.0.0.1", self.port):
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts it holds, with their status (inhibitedBy ...)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            found: list[dict[str, Any]] = json.loads(resp.read())
            return found


class LocalForwarder(LocalProcess):
    """``spanstream alerts forward`` as a process; ready once its metrics port answers."""

    name = "forwarder"

    def __init__(self, log_dir: Path, env: Mapping[str, str], *, from_beginning: bool = True):
        self.metrics_port = free_port()
        self.from_beginning = from_beginning
        super().__init__(log_dir / f"forwarder-{self.metrics_port}.log", env=env)

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "pipeline.cli", "alerts", "forward"]
        args += ["--metrics-port", str(self.metrics_port)]
        return args + (["--from-beginning"] if self.from_beginning else [])

    def ready(self) -> bool:
        return port_open("127.0.0.1", self.metrics_port) and "assigned" in self.log_text()

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def metric(self, name: str) -> float:
        """Sum of the forwarder's samples named ``name`` (0 if absent)."""
        from tests.harness.collector import prometheus_sum

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return prometheus_sum(resp.read().decode(), name)
