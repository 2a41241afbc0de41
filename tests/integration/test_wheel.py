"""The built wheel holds the package and none of the test harness.

Builds the wheel as a user's ``pip install`` would (``pip wheel --no-deps``,
build isolation on: pip fetches the pinned setuptools from the package index
or its cache) from a copy of the source tree, then reads every file in it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.harness.packaging import harness_classes, harness_leaks

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Not part of a source distribution: local state, caches, earlier builds.
NOT_SOURCE = (".git", ".venv", ".cache", "build", "data", "*.egg-info", "__pycache__", "*.so")


def test_wheel_holds_no_test_harness(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    out = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)]
    done = subprocess.run(build, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out.glob("spanstream-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        files = {n: archive.read(n).decode() for n in names if n.endswith(".py")}
    assert "pipeline/local/process.py" in files and "pipeline/cli.py" in files
    assert any(n.startswith("pipeline/otlp/_heads.") and n.endswith(".so") for n in names)
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"pipeline"}
    leaks = harness_leaks({n: files.get(n, "") for n in names}, harness_classes())
    assert leaks == []
