"""Fixtures of the fault suite: rigs on the session broker, and the results file."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Rig

MakeRig = Callable[..., Rig]
FAULTS_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The suite takes minutes: run it only when asked for with ``-m faults``."""
    if "faults" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="fault-injection suite: run with -m faults")
    for item in items:
        if FAULTS_DIR in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def results_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``SPANSTREAM_FAULTS_RESULTS`` or ``faults-results.jsonl`` in the session's tmp dir."""
    path = Path(
        os.environ.get("SPANSTREAM_FAULTS_RESULTS")
        or tmp_path_factory.getbasetemp() / "faults-results.jsonl"
    )
    print(f"\nfault results -> {path}")
    return path


@pytest.fixture
def make_rig(kafka_bootstrap: str, tmp_path: Path, results_file: Path) -> Iterator[MakeRig]:
    """``make_rig(bootstrap=None, entry=..., **env)``: a rig (own topics, one worker), closed
    after the test; ``entry`` is the module the workers run (see :class:`Rig`)."""
    rigs: list[Rig] = []

    def make(bootstrap: str | None = None, entry: str = "pipeline.cli", **env: str) -> Rig:
        workdir = tmp_path / f"rig{len(rigs)}"
        rig = Rig(bootstrap or kafka_bootstrap, workdir, results_file, env, entry)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()
