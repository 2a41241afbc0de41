"""Shared vocabulary of the detectors: features, per-feature specs, score mapping.

Every detector follows River's anomaly-detector protocol: ``score_one(x)`` is
called *before* ``learn_one(x)``, returns a number where higher means more
anomalous (here always in ``[0, 1]``) and never changes the model. Internally
detectors compute a direction-aware deviation ``z`` (in robust standard
deviations) and map it to a score with :func:`z_to_score`, so that every
detector shares the same meaning of 0.5 ("at the alert threshold").
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

Features = Mapping[str, float]
Direction = Literal["up", "down", "both"]
Transform = Literal["log", "sqrt", "ratio", "identity"]

WARNING_SCORE = 0.5
CRITICAL_SCORE = 0.8


class Severity(StrEnum):
    """How loud an alert should be; ``none`` means not anomalous."""

    NONE = "none"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class FeatureSpec:
    """How one feature is read: variance-stabilising transform and alerting direction.

    ``transform``: ``log`` for latencies (multiplicative noise), ``sqrt`` for
    counts (Poisson variance), ``ratio`` for shares whose noise depends on the
    request count, ``identity`` otherwise. A feature is only read from windows
    with at least ``min_requests`` requests: a p99 of three requests is their
    maximum, not a p99, and an empty window has no latency at all. ``skew``
    widens the noise estimate of tail percentiles, whose sampling distribution
    (a few requests beyond the quantile) has a longer upper tail than the
    mean-absolute-deviation scale assumes. ``cusum`` lets the residual
    detectors also accumulate small deviations (Page's CUSUM) to catch a slow
    drift; traffic opts out, because its organic daily curve is such a drift.
    """

    name: str
    transform: Transform = "identity"
    direction: Direction = "both"
    min_requests: int = 0
    skew: float = 1.0
    cusum: bool = True

    def encode(self, value: float) -> float:
        """Map an observed value into the detector's working space.

        >>> FeatureSpec("p99_ms", "log").encode(0.0)
        0.0
        """
        if self.transform == "log":
            return math.log1p(max(value, 0.0))
        if self.transform == "sqrt":
            return math.sqrt(max(value, 0.0) + 0.375)  # Anscombe: Poisson -> sd 0.5
        return value

    def decode(self, value: float) -> float:
        """Inverse of :meth:`encode`, to report an expected value in original units.

        >>> round(FeatureSpec("requests", "sqrt").decode(FeatureSpec("requests", "sqrt").encode(9)))
        9
        """
        if self.transform == "log":
            return math.expm1(value)
        if self.transform == "sqrt":
            return max(value * value - 0.375, 0.0)
        return value

    def directed(self, z: float) -> float:
        """Keep only deviations in the direction that matters (``z`` signed, result >= 0).

        >>> FeatureSpec("p99_ms", direction="up").directed(-4.0)
        0.0
        """
        if self.direction == "up":
            return max(z, 0.0)
        if self.direction == "down":
            return max(-z, 0.0)
        return abs(z)


WINDOW_SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec("requests", "sqrt", "both", cusum=False),
    FeatureSpec("error_ratio", "ratio", "up", min_requests=1),
    FeatureSpec("p50_ms", "log", "up", min_requests=1),
    FeatureSpec("p95_ms", "log", "up", min_requests=20, skew=1.25),
    FeatureSpec("p99_ms", "log", "up", min_requests=100, skew=1.5),
)
"""The pipeline's per-window RED features."""

VALUE_SPECS: tuple[FeatureSpec, ...] = (FeatureSpec("value", "identity", "both"),)
"""A single untyped series, as read by ``spanstream detect``."""


def read(spec: FeatureSpec, x: Features) -> float | None:
    """The feature's encoded value, or None when it is missing or meaningless here.

    >>> read(WINDOW_SPECS[4], {"requests": 0.0, "p99_ms": 0.0}) is None
    True
    """
    raw = x.get(spec.name)
    if raw is None or not math.isfinite(raw):
        return None
    if spec.min_requests and x.get("requests", 0.0) < spec.min_requests:
        return None
    return spec.encode(float(raw))


def z_to_score(z: float, threshold: float) -> float:
    """Map a non-negative deviation to ``[0, 1)``: 0.5 at ``threshold``, 0.8 at twice it.

    >>> z_to_score(3.0, 3.0)
    0.5
    >>> z_to_score(0.0, 3.0)
    0.0
    """
    if not math.isfinite(z):
        return 1.0 if z > 0 else 0.0
    r = max(z, 0.0) / threshold
    return r * r / (r * r + 1.0)


def severity_of(score: float) -> Severity:
    """Severity for a score in ``[0, 1]``.

    >>> severity_of(0.6).value
    'warning'
    """
    if score >= CRITICAL_SCORE:
        return Severity.CRITICAL
    if score >= WARNING_SCORE:
        return Severity.WARNING
    return Severity.NONE


@dataclass(frozen=True)
class Deviation:
    """One metric that deviates: what was seen versus what the model expected."""

    name: str
    observed: float
    expected: float


class Detector(ABC):
    """A streaming anomaly detector over feature dicts (River's protocol, scores in [0, 1])."""

    name: str = "detector"

    @abstractmethod
    def score_one(self, x: Features) -> float:
        """Anomaly score of ``x`` in ``[0, 1]``; must not change the model."""

    @abstractmethod
    def learn_one(self, x: Features) -> None:
        """Update the model with ``x`` (call after :meth:`score_one`)."""

    def explain_one(self, x: Features) -> tuple[Deviation, ...]:
        """Metrics of ``x`` that deviate past the alert threshold, if the detector can tell."""
        return ()

    @abstractmethod
    def to_state(self) -> dict[str, Any]:
        """The learned state as JSON-safe values, tagged ``kind`` and format version ``v``.

        The configuration is not part of it: the worker's own rebuilds the detector.
        """

    @abstractmethod
    def load_state(self, state: object) -> None:
        """Load :meth:`to_state` output (untrusted: checked, see ``pipeline.checked``).

        Called on a detector freshly built from the configuration; raises
        ``StateError`` on anything it does not accept.
        """
