"""Detector state: versioned JSON, round trips per detector, and what a tampered state gets.

A detector's state is restored from the ``detectors`` table's changelog topic:
untrusted input. Every test here failed before ``to_state``/``load_state``
existed (the state was a pickle, loaded as is).
"""

from __future__ import annotations

import copy
import math
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.checked import MAX_STATE_BYTES, StateError, parse_json, to_json
from pipeline.detect.state import from_state
from tests.unit.detect.test_contract import NAMES, make, run, stream

State = dict[str, Any]


def learned(name: str, windows: int) -> tuple[State, list[float]]:
    """A detector's state after ``windows`` windows, and the scores it gives the rest."""
    rows = stream()
    d = make(name)
    run(d, rows[:windows])
    state = d.to_state()
    return state, run(d, rows[windows:])


@pytest.mark.parametrize("windows", [0, 3, 130])
@pytest.mark.parametrize("name", NAMES)
def test_every_detector_round_trips_through_json_and_scores_identically(
    name: str, windows: int
) -> None:
    """Fresh, warming up and warmed up (Holt-Winters and the trees initialised at 130)."""
    state, after = learned(name, windows)
    blob = to_json(state)
    restored = from_state(parse_json(blob), make(name))
    assert to_json(restored.to_state()) == blob
    assert run(restored, stream()[windows:]) == after
    assert {"kind", "v"} <= set(state) and state["kind"] == make(name).name


def marker_pickle(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when loaded: what a tampered record carries."""

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    return pickle.dumps(Payload())


def test_a_pickle_payload_is_rejected_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "owned"
    with pytest.raises(StateError) as err:
        from_state(parse_json(marker_pickle(marker)), make("robust"))
    assert err.value.reason == "bad_json"
    assert not marker.exists()


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x00\xff garbage", b'{"kind": "robust"', b"[" * 100_000, b" " * (MAX_STATE_BYTES + 1)],
    ids=["empty", "binary", "truncated", "deeply-nested", "too-large"],
)
def test_bytes_that_are_not_json_are_rejected(blob: bytes) -> None:
    with pytest.raises(StateError) as err:
        parse_json(blob)
    assert err.value.reason == "bad_json"


def at(path: str, value: Any) -> Callable[[State], None]:
    """A mutation setting the value at a dotted path (list indexes as numbers)."""

    def mutate(state: State) -> None:
        *parents, last = path.split(".")
        node: Any = state
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def drop(key: str) -> Callable[[State], None]:
    return lambda state: state.pop(key)


def add(key: str) -> Callable[[State], None]:
    return lambda state: state.update({key: 1})


NAN, INF = math.nan, math.inf
F = "features.p99_ms"
HUGE = [1.0] * 1_000_000
#: (detector, windows learnt, mutation, reason): wrong types, lengths, NaN/inf, sizes, shapes.
TAMPERED: list[tuple[str, int, Callable[[State], None], str]] = [
    ("robust", 40, at("v", 2), "version"),
    ("robust", 40, at("v", "1"), "version"),
    ("robust", 40, at("kind", "hst"), "kind"),
    ("robust", 40, drop("features"), "schema"),
    ("robust", 40, add("__reduce__"), "schema"),
    ("robust", 40, at("features", []), "schema"),
    ("robust", 40, at("features.bogus", {}), "schema"),
    ("robust", 40, at(f"{F}.mad", NAN), "schema"),
    ("robust", 40, at(f"{F}.mad", -1.0), "schema"),
    ("robust", 40, at(f"{F}.cusum_up", INF), "schema"),
    ("robust", 40, at(f"{F}.model.level", -INF), "schema"),
    ("robust", 40, at(f"{F}.model.level", "1.0"), "schema"),
    ("robust", 40, at(f"{F}.model.level", 1e300), "schema"),
    ("robust", 40, at(f"{F}.n", True), "schema"),
    ("robust", 40, at(f"{F}.n", -1), "schema"),
    ("robust", 40, at(f"{F}.n", 2**64), "schema"),
    ("robust", 40, at(f"{F}.n", 1.5), "schema"),
    ("robust", 40, at(f"{F}.recent", HUGE), "schema"),
    ("robust", 40, at(f"{F}.recent", [None]), "schema"),
    ("robust", 40, at(f"{F}.model", None), "schema"),
    ("seasonal", 130, at(f"{F}.model.season", HUGE), "schema"),
    ("seasonal", 130, at(f"{F}.model.season.0", 0.0), "schema"),
    ("seasonal", 130, at(f"{F}.model.level", []), "schema"),
    ("seasonal", 130, at(f"{F}.model.first", [1.0]), "schema"),
    ("seasonal", 130, at(f"{F}.model.ready", 1), "schema"),
    ("seasonal", 3, at(f"{F}.model.first", [1.0] * 24), "schema"),
    ("seasonal", 3, at(f"{F}.model.level", [1.0]), "schema"),
    ("hst", 130, at("trees.nodes", [[]] * 1000), "schema"),
    ("hst", 130, at("trees.nodes.0", [[0, 0.5, 0, 0]] * 100_000), "schema"),
    ("hst", 130, at("trees.nodes.0.0", [99, 0.5, 0, 0]), "schema"),
    ("hst", 130, at("trees.nodes.0.0", [-1, 0.5, 0, 0]), "schema"),
    ("hst", 130, at("trees.nodes.0.0", [0, NAN, 0, 0]), "schema"),
    ("hst", 130, at("trees.nodes.0.0", [0, 0.5, 10**9, 0]), "schema"),
    ("hst", 130, at("trees.nodes.0.0", [0, 0.5, 0]), "schema"),
    ("hst", 130, at("trees.nodes.0.1", "leaf"), "schema"),
    ("hst", 130, at("trees.nodes.0.-1", [0, 0.5, 0, 0]), "schema"),
    ("hst", 130, at("trees.counter", 10**6), "schema"),
    ("hst", 130, at("min", {"evil": 1.0}), "schema"),
    ("hst", 130, at("last.p99_ms", INF), "schema"),
    ("combined", 130, at("members", []), "schema"),
    ("combined", 130, at("members.1.kind", "robust"), "kind"),
    ("combined", 130, at("members.0.features.p99_ms.mad", NAN), "schema"),
    ("tail", 130, at("v", 2), "version"),
    ("tail", 130, at("quiet", 10**6), "schema"),
    ("tail", 130, at("quiet", -1), "schema"),
    ("tail", 130, at(f"{F}.values", HUGE), "schema"),
    ("tail", 130, at(f"{F}.residuals.level", HUGE), "schema"),
    ("tail-all-views", 130, at(f"{F}.residuals.change.0", -1.0), "schema"),
    ("tail", 130, at(f"{F}.residuals.bogus", []), "schema"),
    ("tail", 130, at(f"{F}.history", HUGE), "schema"),
    ("tail", 130, at(f"{F}.values.0", NAN), "schema"),
    ("tail", 130, at(f"{F}.residuals.level.0", INF), "schema"),
    ("tail", 130, at(f"{F}.resolution", -1.0), "schema"),
    ("tail", 130, at(f"{F}.last", 1e300), "schema"),
    ("tail", 130, at(f"{F}.n", 0), "schema"),
    ("tail", 130, at(f"{F}.values", []), "schema"),
    ("tail", 130, drop("quiet"), "schema"),
    ("tail-all-views", 130, at(f"{F}.recent", [1.0] * 5), "schema"),
    ("tail-all-views", 130, at(f"{F}.recent.0", NAN), "schema"),
    ("tail-all-views", 130, at(f"{F}.residuals.sustained", HUGE), "schema"),
    ("tail-all-views", 130, at(f"{F}.residuals.change", None), "schema"),
    ("random", 3, at("rng", [0] * 625), "schema"),
    ("random", 3, at("rng", [1] * 10_000), "schema"),
    ("random", 3, at("rng.624", 10_000), "schema"),
    ("random", 3, at("next", 2.0), "schema"),
]


@pytest.mark.parametrize(
    ("name", "windows", "mutate", "reason"),
    TAMPERED,
    ids=[f"{n}-{i}" for i, (n, *_) in enumerate(TAMPERED)],
)
def test_a_tampered_state_is_rejected_with_its_reason(
    name: str, windows: int, mutate: Callable[[State], None], reason: str
) -> None:
    state, _ = learned(name, windows)
    tampered = copy.deepcopy(state)
    mutate(tampered)
    # Through JSON, as from the table: NaN and inf are written and must be refused on read.
    with pytest.raises(StateError) as err:
        from_state(parse_json(to_json(tampered)), make(name))
    assert err.value.reason == reason, err.value


@pytest.mark.parametrize("value", [None, 1, "robust", [], {"kind": "robust"}])
def test_a_state_of_the_wrong_shape_is_rejected(value: Any) -> None:
    with pytest.raises(StateError):
        from_state(value, make("robust"))
