"""Combinations of detectors, and the random-score baseline used by the evaluation."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pipeline.detect.base import Detector, Deviation, Features


@dataclass(frozen=True)
class CombinedConfig:
    """How member scores are merged: ``max`` (any member alerts) or a ``weighted`` mean."""

    mode: Literal["max", "weighted"] = "max"
    weights: tuple[float, ...] = ()


class CombinedDetector(Detector):
    """Merge several detectors' scores; explanations come from the members that can give them.

    >>> from pipeline.detect.residual import RobustDetector
    >>> d = CombinedDetector((RobustDetector(), RobustDetector()))
    >>> d.score_one({"requests": 1.0})
    0.0
    """

    name = "combined"

    def __init__(self, members: tuple[Detector, ...], config: CombinedConfig | None = None) -> None:
        if not members:
            raise ValueError("a combined detector needs at least one member")
        self.members = members
        self.config = config or CombinedConfig()
        if self.config.mode == "weighted" and len(self.config.weights) != len(members):
            raise ValueError("weighted mode needs one weight per member")

    def score_one(self, x: Features) -> float:
        """Maximum or weighted mean of the members' scores."""
        scores = [m.score_one(x) for m in self.members]
        if self.config.mode == "max":
            return max(scores)
        total = sum(self.config.weights)
        return sum(w * s for w, s in zip(self.config.weights, scores, strict=True)) / total

    def learn_one(self, x: Features) -> None:
        """Every member learns ``x``."""
        for m in self.members:
            m.learn_one(x)

    def explain_one(self, x: Features) -> tuple[Deviation, ...]:
        """First explanation per metric among the members, in member order."""
        seen: dict[str, Deviation] = {}
        for m in self.members:
            for dev in m.explain_one(x):
                seen.setdefault(dev.name, dev)
        return tuple(seen.values())


@dataclass(frozen=True)
class RandomConfig:
    """Seed of the random baseline."""

    seed: int = 0


class RandomDetector(Detector):
    """Uniform random scores: the floor every real detector must beat.

    The score of a window is drawn once and kept until ``learn_one`` moves on,
    so that ``score_one`` stays free of side effects.

    >>> d = RandomDetector(RandomConfig(seed=1))
    >>> d.score_one({}) == d.score_one({})
    True
    """

    name = "random"

    def __init__(self, config: RandomConfig | None = None) -> None:
        self.config = config or RandomConfig()
        self.rng = random.Random(self.config.seed)
        self.next_score = self.rng.random()

    def score_one(self, x: Features) -> float:
        """The pre-drawn score of the current window."""
        return self.next_score

    def learn_one(self, x: Features) -> None:
        """Draw the next window's score."""
        self.next_score = self.rng.random()
