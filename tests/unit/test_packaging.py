"""The wheel's package list, as setuptools finds it from pyproject.toml, holds no test harness.

The build itself is in ``tests/integration/test_wheel.py``; this is the fast check of
the same rule on the packages setuptools would put in it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_namespace_packages, find_packages

from tests.harness.packaging import harness_classes, harness_leaks

ROOT = Path(__file__).resolve().parents[2]


def shipped_packages() -> list[str]:
    """The packages ``[tool.setuptools.packages.find]`` selects (namespaces on by default)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    finder = find_namespace_packages if find.get("namespaces", True) else find_packages
    return finder(
        where=str(ROOT / find.get("where", ["."])[0]),
        include=find.get("include", ["*"]),
        exclude=find.get("exclude", []),
    )


def test_only_the_pipeline_package_ships() -> None:
    packages = shipped_packages()
    assert "pipeline" in packages and "pipeline.local" in packages
    assert [p for p in packages if p.split(".")[0] != "pipeline"] == []
    assert [p for p in packages if p.startswith("pipeline.testing")] == []


def test_no_shipped_module_imports_or_copies_the_harness() -> None:
    files = {
        str(path.relative_to(ROOT)): path.read_text()
        for package in shipped_packages()
        for path in (ROOT / package.replace(".", "/")).glob("*.py")
    }
    assert len(files) > 50
    assert harness_leaks(files, harness_classes()) == []


def test_the_harness_is_found() -> None:
    # An empty class list would make the copy check above pass vacuously.
    assert {"LocalClickHouse", "LocalCollector", "OutageStore", "Accounting"} <= harness_classes()
