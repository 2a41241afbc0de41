"""constraints.txt pins what CI installs: every dependency, at a version pyproject.toml allows."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, Version]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"not an exact pin: {line!r}"
            out[canonicalize_name(name)] = Version(version)
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in [*project["dependencies"], *extras]]


def test_every_dependency_is_pinned_at_a_version_pyproject_allows() -> None:
    pinned = pins()
    missing = [r.name for r in declared() if canonicalize_name(r.name) not in pinned]
    assert missing == []
    outside = [
        f"{r.name}=={pinned[canonicalize_name(r.name)]} vs {r.specifier}"
        for r in declared()
        if not r.specifier.contains(pinned[canonicalize_name(r.name)], prereleases=True)
    ]
    assert outside == []


def test_the_project_itself_is_not_pinned() -> None:
    assert "spanstream" not in pins()


def test_ci_and_the_image_install_with_the_constraints() -> None:
    assert "-c constraints.txt -e '.[dev]'" in (ROOT / "infra/bootstrap.sh").read_text()
    assert "-c constraints.txt" in (ROOT / "Dockerfile").read_text()
    assert "bash infra/lock.sh" in (ROOT / "Makefile").read_text()
