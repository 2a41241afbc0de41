"""A real OpenTelemetry Collector (``otelcol-spanstream``) and ``telemetrygen`` for tests.

Both binaries come from ``infra/collector/build.sh``, which builds them from Go
modules into ``${SPANSTREAM_CACHE:-<repo>/.cache}/collector/<version>/``.

    with LocalCollector(COLLECTOR_DIR / "otelcol-kafka.yaml",
                        env={"SPANSTREAM_KAFKA": bootstrap}, log_dir=tmp_path) as col:
        sent = run_telemetrygen(col.otlp_grpc_endpoint, traces=20)
        sent.spans  # 20 traces * (1 root + 1 child)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ServiceUnavailable
from pipeline.local.process import LocalProcess, free_port, port_open

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Configs and build script of the Collector.
COLLECTOR_DIR = REPO_ROOT / "infra" / "collector"
#: The release set pinned in infra/collector/builder-config.yaml and build.sh.
COLLECTOR_VERSION = "v0.155.0"
#: Seconds a Collector may take to open its OTLP gRPC port.
READY_TIMEOUT = 30.0
#: Seconds a graceful stop may take before SIGKILL.
STOP_TIMEOUT = 15.0

_BUILD_HINT = "run infra/collector/build.sh"
# telemetrygen logs one line per worker when it is done, e.g.
# `... traces generated {"worker": 0, "traces": 20}` (zap development format).
_GENERATED = re.compile(r"traces generated\s+(\{.*\})")
# The OpenTelemetry Go SDK reports failed exports through its global error
# handler and telemetrygen still exits 0, so failures are found in its output.
_EXPORT_FAILED = re.compile(r"traces export: |failed to stop the batch span processor")


def collector_cache_dir() -> Path:
    """Where build.sh puts this version's binaries (honours ``SPANSTREAM_CACHE``)."""
    cache = Path(os.environ.get("SPANSTREAM_CACHE") or REPO_ROOT / ".cache")
    return cache / "collector" / COLLECTOR_VERSION


def _binary(path: Path) -> Path:
    if not os.access(path, os.X_OK):
        raise ServiceUnavailable(f"{path} is not built: {_BUILD_HINT}")
    return path


def collector_binary() -> Path:
    """The ``otelcol-spanstream`` binary; :class:`ServiceUnavailable` if not built."""
    return _binary(collector_cache_dir() / "dist" / "otelcol-spanstream")


def telemetrygen_binary() -> Path:
    """The ``telemetrygen`` binary; :class:`ServiceUnavailable` if not built."""
    return _binary(collector_cache_dir() / "bin" / "telemetrygen")


def collector_built() -> bool:
    """True when both binaries exist, i.e. build.sh has run."""
    try:
        collector_binary()
        telemetrygen_binary()
    except ServiceUnavailable:
        return False
    return True


class LocalCollector(LocalProcess):
    """One ``otelcol-spanstream`` process on free local ports.

    The configs in infra/collector read their listen addresses from env vars
    (``SPANSTREAM_OTLP_GRPC`` ...); this class points them at free ports, so
    several Collectors and the developer's own can run at once. ``env`` is
    applied on top (e.g. ``SPANSTREAM_KAFKA``). Ready means the OTLP gRPC port
    accepts connections; :meth:`stop` sends SIGTERM, on which the Collector
    drains its queue and batch.
    """

    name = "collector"

    def __init__(
        self,
        config_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        env: Mapping[str, str] | None = None,
        *,
        log_dir: str | os.PathLike[str] | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        paths = [config_path] if isinstance(config_path, str | os.PathLike) else config_path
        self.config_paths = [Path(p) for p in paths]
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.metrics_port = free_port()
        super().__init__(
            Path(log_dir or ".") / f"otelcol-{self.grpc_port}.log",
            env={
                "SPANSTREAM_OTLP_GRPC": f"127.0.0.1:{self.grpc_port}",
                "SPANSTREAM_OTLP_HTTP": f"127.0.0.1:{self.http_port}",
                "SPANSTREAM_COLLECTOR_HEALTH": f"127.0.0.1:{free_port()}",
                "SPANSTREAM_COLLECTOR_METRICS_PORT": str(self.metrics_port),
                **(env or {}),
            },
            ready_timeout=ready_timeout,
            stop_timeout=STOP_TIMEOUT,
        )

    @property
    def otlp_grpc_endpoint(self) -> str:
        """``host:port`` of the OTLP gRPC receiver (what telemetrygen and SDKs dial)."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def otlp_http_endpoint(self) -> str:
        """``http://host:port`` of the OTLP HTTP receiver."""
        return f"http://127.0.0.1:{self.http_port}"

    def metric(self, name: str) -> float:
        """The sum of the Collector's own Prometheus samples named ``name`` (0 if absent)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return prometheus_sum(resp.read().decode(), name)

    def command(self) -> list[str]:
        """The command line that starts this Collector."""
        args = [str(collector_binary())]
        for path in self.config_paths:
            args += ["--config", str(path)]
        return args

    def ready(self) -> bool:
        return port_open("127.0.0.1", self.grpc_port)


def prometheus_sum(text: str, name: str) -> float:
    """Sum of the samples of metric ``name`` in Prometheus text format.

    >>> prometheus_sum('# HELP x\\nx{a="1"} 2\\nx{a="2"} 3\\nx_total 9\\n', "x")
    5.0
    """
    total = 0.0
    for line in text.splitlines():
        sample = line.split("{", 1)[0].split(" ", 1)[0]
        if sample == name:
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass(frozen=True)
class TelemetrygenRun:
    """What telemetrygen generated (and, with exit 0 and no export error, sent)."""

    traces: int
    spans: int
    services: tuple[str, ...]


def spans_per_trace(child_spans: int) -> int:
    """Spans in one telemetrygen trace: a root plus its children.

    telemetrygen makes at least one child span even for ``--child-spans 0``.

    >>> spans_per_trace(3), spans_per_trace(0)
    (4, 2)
    """
    return 1 + max(1, child_spans)


def generated_traces(output: str) -> int:
    """Sum of the per-worker ``traces generated`` counts in telemetrygen's log.

    >>> generated_traces('INFO traces generated {"worker": 0, "traces": 7}\\n'
    ...                  'INFO traces generated {"worker": 1, "traces": 5}')
    12
    """
    return sum(int(json.loads(m.group(1))["traces"]) for m in _GENERATED.finditer(output))


def attribute_flags(flag: str, attributes: Mapping[str, str | int | bool]) -> list[str]:
    """telemetrygen ``key=value`` flags: strings quoted, ints and booleans bare.

    >>> attribute_flags("--otlp-attributes", {"case": "a b", "n": 3, "ok": True})[1::2]
    ['case="a b"', 'n=3', 'ok=true']
    """
    args: list[str] = []
    for key, value in attributes.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        else:
            if '"' in value:
                raise ValueError(f"telemetrygen cannot take a double quote in {key}={value!r}")
            text = f'"{value}"'
        args += [flag, f"{key}={text}"]
    return args


def telemetrygen_command(
    endpoint: str,
    traces: int,
    child_spans: int,
    service: str,
    workers: int,
    *,
    rate: float = 0,
    span_attributes: Mapping[str, str | int | bool] | None = None,
    resource_attributes: Mapping[str, str | int | bool] | None = None,
) -> list[str]:
    """The telemetrygen command line for one service (plain gRPC).

    ``rate`` is spans per second per worker, 0 (the default here) unthrottled.
    ``span_attributes`` go on every span (``--telemetry-attributes``),
    ``resource_attributes`` on the resource (``--otlp-attributes``).
    """
    return [
        str(telemetrygen_binary()),
        "traces",
        "--otlp-endpoint",
        endpoint,
        "--otlp-insecure",
        "--traces",
        str(traces),
        "--child-spans",
        str(child_spans),
        "--workers",
        str(workers),
        # telemetrygen's own default is 1 span per second per worker.
        "--rate",
        f"{rate:g}",
        "--service",
        service,
        *attribute_flags("--telemetry-attributes", span_attributes or {}),
        *attribute_flags("--otlp-attributes", resource_attributes or {}),
    ]


def run_telemetrygen(
    endpoint: str,
    traces: int = 10,
    *,
    child_spans: int = 1,
    services: Sequence[str] = ("telemetrygen",),
    workers: int = 1,
    timeout: float = 60.0,
    rate: float = 0,
    concurrent: bool = False,
    span_attributes: Mapping[str, str | int | bool] | None = None,
    resource_attributes: Mapping[str, str | int | bool] | None = None,
) -> TelemetrygenRun:
    """Send ``traces`` traces per worker and service to an OTLP gRPC ``endpoint``.

    One telemetrygen process per service, one after another, or all at once
    with ``concurrent``; ``rate``, ``span_attributes`` and
    ``resource_attributes`` as in :func:`telemetrygen_command`. Raises
    :class:`ServiceUnavailable` if a run fails, reports an export error, or
    generated a different number of traces than asked.
    """
    commands = [
        telemetrygen_command(
            endpoint,
            traces,
            child_spans,
            service,
            workers,
            rate=rate,
            span_attributes=span_attributes,
            resource_attributes=resource_attributes,
        )
        for service in services
    ]
    batches = [commands] if concurrent else [[cmd] for cmd in commands]
    total = 0
    for batch in batches:
        for returncode, output in _run_all(batch, timeout):
            generated = generated_traces(output)
            if returncode or _EXPORT_FAILED.search(output) or generated != traces * workers:
                tail = "\n".join(output.splitlines()[-15:])
                raise ServiceUnavailable(
                    f"telemetrygen to {endpoint} failed (exit {returncode}, "
                    f"{generated}/{traces * workers} traces): {tail}"
                )
            total += generated
    return TelemetrygenRun(total, total * spans_per_trace(child_spans), tuple(services))


def _run_all(commands: Sequence[list[str]], timeout: float) -> list[tuple[int, str]]:
    """Run commands at once; (exit code, stdout + stderr) of each, in order.

    Output goes to temporary files, not pipes, so no process blocks on a full
    pipe while another one is waited for.
    """
    with contextlib.ExitStack() as stack:
        outputs = [stack.enter_context(tempfile.TemporaryFile()) for _ in commands]
        procs = [
            subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            for cmd, out in zip(commands, outputs, strict=True)
        ]
        deadline = time.monotonic() + timeout
        try:
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired as exc:
                    raise ServiceUnavailable(f"telemetrygen did not finish in {timeout}s") from exc
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        results = []
        for proc, out in zip(procs, outputs, strict=True):
            out.seek(0)
            results.append((proc.returncode, out.read().decode(errors="replace")))
        return results
