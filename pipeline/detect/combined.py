"""Combinations of detectors, and the random-score baseline used by the evaluation."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.checked import StateError, count, header, items, number
from pipeline.detect.base import Detector, Deviation, Features

#: Length of the Mersenne Twister state ``random.getstate()`` returns (version 3).
_MT_WORDS = 625


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

    #: Format version of :meth:`to_state`.
    STATE_VERSION = 1

    def to_state(self) -> dict[str, Any]:
        """Each member's own state, in member order."""
        members = [m.to_state() for m in self.members]
        return {"kind": self.name, "v": self.STATE_VERSION, "members": members}

    def load_state(self, state: object) -> None:
        """As many member states as members, each checked by its member (kind included)."""
        data = header(state, self.name, self.STATE_VERSION, ["members"])
        members = items(data["members"], "members", len(self.members))
        for member, value in zip(self.members, members, strict=True):
            member.load_state(value)


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

    #: Format version of :meth:`to_state`.
    STATE_VERSION = 1

    def to_state(self) -> dict[str, Any]:
        """The generator's state (its 625 words) and the pre-drawn score."""
        words = self.rng.getstate()[1]
        return {
            "kind": self.name,
            "v": self.STATE_VERSION,
            "rng": list(words),
            "next": self.next_score,
        }

    def load_state(self, state: object) -> None:
        data = header(state, self.name, self.STATE_VERSION, ["rng", "next"])
        raw = items(data["rng"], "rng", _MT_WORDS)
        words = [count(w, "rng", 2**32 - 1) for w in raw[:-1]]
        position = count(raw[-1], "rng", _MT_WORDS - 1)
        if not any(words):
            raise StateError("schema", "rng: an all-zero Mersenne Twister state")
        self.rng.setstate((3, (*words, position), None))
        self.next_score = number(data["next"], "next", 0.0, 1.0)
