"""Multivariate detector: River's Half-Space Trees over online min-max scaled features.

Half-Space Trees' raw score (mass in sparse regions) has no fixed meaning:
its typical level depends on the data. The raw score is therefore turned into
a z-score against its own running mean and mean absolute deviation, learnt
only from windows that were not anomalous, and mapped to ``[0, 1]`` like the
other detectors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.checked import (
    StateError,
    count,
    flag,
    header,
    items,
    number,
    per_name,
    record,
    some_names,
)
from pipeline.detect.base import WINDOW_SPECS, Detector, Features, FeatureSpec, read, z_to_score
from pipeline.detect.expectation import MAX_VALUE


@dataclass(frozen=True)
class HstConfig:
    """Parameters of the Half-Space Trees detector (``seed`` makes the trees reproducible)."""

    n_trees: int = 10
    height: int = 6
    window_size: int = 120
    threshold: float = 4.0
    calibration_alpha: float = 0.02
    warmup: int = 60
    seed: int = 42


class HstDetector(Detector):
    """Half-Space Trees on encoded features (sqrt counts, log latencies).

    Missing or meaningless features (latency of an empty window) are imputed
    with the last seen value so the trees always see the same dimensions.

    >>> from pipeline.detect.base import VALUE_SPECS
    >>> d = HstDetector(HstConfig(window_size=20, warmup=10), specs=VALUE_SPECS)
    >>> for i in range(200):
    ...     d.learn_one({"value": 10.0 + (i % 3)})
    >>> d.score_one({"value": 500.0}) > d.score_one({"value": 11.0})
    True
    """

    name = "hst"

    def __init__(
        self, config: HstConfig | None = None, specs: tuple[FeatureSpec, ...] = WINDOW_SPECS
    ) -> None:
        from river import anomaly, preprocessing

        self.config = config or HstConfig()
        self.specs = specs
        self.scaler = preprocessing.MinMaxScaler()
        self.trees = anomaly.HalfSpaceTrees(
            n_trees=self.config.n_trees,
            height=self.config.height,
            window_size=self.config.window_size,
            seed=self.config.seed,
        )
        self.last: dict[str, float] = {s.name: 0.0 for s in specs}
        self.n = 0
        self.mean = 0.0
        self.mad = 0.0

    def _vector(self, x: Features) -> dict[str, float]:
        out = {}
        for spec in self.specs:
            v = read(spec, x)
            out[spec.name] = self.last[spec.name] if v is None else v
        return out

    def _raw(self, x: Features) -> tuple[dict[str, float], float]:
        vec = self._vector(x)
        scaled: dict[str, Any] = self.scaler.transform_one(vec)
        # Values beyond what was seen are clipped into the trees' padded range.
        scaled = {k: min(max(v, -0.1), 1.1) for k, v in scaled.items()}
        return vec, float(self.trees.score_one(scaled))

    def _z(self, raw: float) -> float:
        return (raw - self.mean) / max(1.25 * self.mad, 1e-3)

    def score_one(self, x: Features) -> float:
        """Calibrated Half-Space Trees score; 0 during warm-up."""
        if self.n < self.config.warmup + self.config.window_size:
            return 0.0
        return z_to_score(self._z(self._raw(x)[1]), self.config.threshold)

    def learn_one(self, x: Features) -> None:
        """Update the scaler, the trees, and the score calibration (skipping anomalies)."""
        vec, raw = self._raw(x)
        self.n += 1
        if self.n > self.config.window_size:
            warm = self.n <= self.config.window_size + self.config.warmup
            if warm or self._z(raw) < self.config.threshold:
                a = max(self.config.calibration_alpha, 1.0 / (self.n - self.config.window_size))
                self.mad += a * (abs(raw - self.mean) - self.mad)
                self.mean += a * (raw - self.mean)
        self.scaler.learn_one(vec)
        self.trees.learn_one(self.scaler.transform_one(vec))
        self.last = vec

    #: Format version of :meth:`to_state`.
    STATE_VERSION = 1

    def to_state(self) -> dict[str, Any]:
        """Calibration, last values, the scaler's range and every tree node (depth-first)."""
        trees = self.trees
        return {
            "kind": self.name,
            "v": self.STATE_VERSION,
            "n": self.n,
            "mean": self.mean,
            "mad": self.mad,
            "last": dict(self.last),
            # Scoring before any learning leaves infinite placeholders: not state.
            "min": _finite(self.scaler.min),
            "max": _finite(self.scaler.max),
            "trees": None if not trees.trees else _trees_state(trees, self._names()),
        }

    def load_state(self, state: object) -> None:
        """The trees' shape (count, height) is the configuration's, node values are checked."""
        keys = ["n", "mean", "mad", "last", "min", "max", "trees"]
        data = header(state, self.name, self.STATE_VERSION, keys)
        names = self._names()

        def value(v: object, where: str) -> float:
            return number(v, where, -MAX_VALUE, MAX_VALUE)

        self.n = count(data["n"], "n")
        self.mean = value(data["mean"], "mean")
        self.mad = number(data["mad"], "mad", 0.0, MAX_VALUE)
        self.last = per_name(data["last"], "last", names, value)
        for k, v in some_names(data["min"], "min", names, value).items():
            self.scaler.min[k].update(v)
        for k, v in some_names(data["max"], "max", names, value).items():
            self.scaler.max[k].update(v)
        if data["trees"] is not None:
            _load_trees(self.trees, data["trees"], names)

    def _names(self) -> list[str]:
        return [s.name for s in self.specs]


def _finite(stats: dict[str, Any]) -> dict[str, float]:
    return {k: m.get() for k, m in stats.items() if math.isfinite(m.get())}


def _trees_state(hst: Any, names: list[str]) -> dict[str, Any]:
    """River's trees as ``[feature index or -1 for a leaf, threshold, l_mass, r_mass]`` rows."""
    from river.tree.padded import PaddedBranch

    index = {name: i for i, name in enumerate(names)}

    def row(node: Any) -> list[Any]:
        if isinstance(node, PaddedBranch):
            return [index[node.feature], node.threshold, node.l_mass, node.r_mass]
        return [-1, 0.0, node.l_mass, node.r_mass]

    return {
        "counter": hst.counter,
        "first_window": hst._first_window,
        "nodes": [[row(node) for node in nodes] for nodes in hst._tree_nodes],
    }


def _load_trees(hst: Any, value: object, names: list[str]) -> None:
    data = record(value, "trees", ["counter", "first_window", "nodes"])
    limit = hst.window_size
    size = 2 ** (hst.height + 1) - 1
    rows = items(data["nodes"], "trees.nodes", hst.n_trees)
    hst.trees = [_tree(items(t, "tree", size), hst.height, limit, names) for t in rows]
    hst._tree_nodes = [list(t.iter_dfs()) for t in hst.trees]
    hst.counter = count(data["counter"], "trees.counter", limit - 1)
    hst._first_window = flag(data["first_window"], "trees.first_window")


def _tree(rows: Sequence[Any], height: int, mass: int, names: list[str]) -> Any:
    """Rebuild one tree from its depth-first rows (a complete binary tree of ``height``)."""
    from river.tree.padded import PaddedBranch, PaddedLeaf

    it = iter(rows)

    def build(depth: int) -> Any:
        feature, threshold, l_mass, r_mass = items(next(it), "trees.node", 4)
        masses = {
            "l_mass": count(l_mass, "trees.node.l_mass", mass),
            "r_mass": count(r_mass, "trees.node.r_mass", mass),
        }
        if depth == height:
            if feature != -1:
                raise StateError("schema", "trees: a leaf where the height ends")
            return PaddedLeaf(**masses)
        on = count(feature, "node.feature", len(names) - 1)
        at = number(threshold, "node.threshold", 0.0, 1.0)
        left = build(depth + 1)
        right = build(depth + 1)
        return PaddedBranch(left, right, names[on], at, **masses)

    return build(0)
