"""Prometheus' ``promtool``, built from Go modules by ``infra/prometheus/build.sh``.

result = run_promtool(promtool_binary(), "check", "rules", "rules.yaml")
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from pipeline.errors import ServiceUnavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "infra" / "prometheus" / "build.sh"
#: Seconds one promtool run may take (rule tests evaluate days of series).
TIMEOUT = 300.0


def prometheus_version() -> str:
    """The module version build.sh pins (``VERSION="v0.316.0"``)."""
    match = re.search(r'^VERSION="(v[0-9.]+)"$', BUILD_SCRIPT.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"no VERSION= line in {BUILD_SCRIPT}")
    return match.group(1)


def promtool_binary() -> Path:
    """``${SPANSTREAM_CACHE:-<repo>/.cache}/prometheus/<version>/bin/promtool``;
    :class:`ServiceUnavailable` naming the build script if it is not built."""
    cache = Path(os.environ.get("SPANSTREAM_CACHE") or REPO_ROOT / ".cache")
    path = cache / "prometheus" / prometheus_version() / "bin" / "promtool"
    if not os.access(path, os.X_OK):
        raise ServiceUnavailable(f"{path} is not built: run infra/prometheus/build.sh")
    return path


def require_promtool() -> Path:
    """promtool for a test: fails the test under ``CI=true`` (bootstrap builds it there),
    skips it elsewhere, naming the build script, when it is not built."""
    import pytest

    try:
        return promtool_binary()
    except ServiceUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"promtool is needed under CI=true: {exc}")
        pytest.skip(str(exc))


def run_promtool(
    binary: Path, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run promtool; its exit code and output are the caller's to judge."""
    return subprocess.run(
        [str(binary), *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
