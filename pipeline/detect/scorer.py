"""The pipeline's entry point: one anomaly model per (service, operation) series.

For each closed window the worker's judge (:mod:`pipeline.judge`) calls
:meth:`WindowScorer.score` with the window's RED features and gets a
:class:`Verdict`; the model learns the window right after scoring it.
The worker keeps each series' model state in its ``detectors`` table
(:mod:`pipeline.judge`), as checked JSON (:mod:`pipeline.detect.state`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pipeline.detect.base import WARNING_SCORE, Detector, Features, Severity, severity_of
from pipeline.detect.registry import build_detector

SeriesKey = tuple[str, str]


@dataclass(frozen=True)
class Verdict:
    """The outcome of scoring one window of one series.

    ``metrics`` lists ``(name, observed, expected)`` for the features that
    deviate, so an alert can say "p99_ms 850 vs expected 120".
    """

    score: float
    severity: Severity
    anomalous: bool
    metrics: tuple[tuple[str, float, float], ...]
    detector: str


@dataclass(frozen=True)
class ScorerConfig:
    """Which detector every series gets, and its ``key=value`` parameter overrides."""

    detector: str = "red"
    params: Mapping[str, str] = field(default_factory=dict)

    def factory(self) -> Callable[[], Detector]:
        """A function building a fresh detector for a new series."""
        return lambda: build_detector(self.detector, self.params)


class WindowScorer:
    """Keeps one detector per series key; score-then-learn on every window.

    >>> scorer = build_default()
    >>> v = scorer.score(("checkout", "POST /pay"), {"requests": 10.0, "error_ratio": 0.0,
    ...                  "p50_ms": 20.0, "p95_ms": 50.0, "p99_ms": 80.0})
    >>> (v.score, v.anomalous)  # warming up: never alerts on the first windows
    (0.0, False)
    """

    def __init__(self, config: ScorerConfig | None = None) -> None:
        self.config = config or ScorerConfig()
        self._factory = self.config.factory()
        self.models: dict[SeriesKey, Detector] = {}

    def score(self, key: SeriesKey, features: Features) -> Verdict:
        """Score the window against the series' model, then let the model learn it."""
        model = self.models.get(key)
        if model is None:
            model = self.models[key] = self._factory()
        score = min(max(float(model.score_one(features)), 0.0), 1.0)
        anomalous = score >= WARNING_SCORE
        deviations = model.explain_one(features) if anomalous else ()
        model.learn_one(features)
        return Verdict(
            score=score,
            severity=severity_of(score),
            anomalous=anomalous,
            metrics=tuple((d.name, d.observed, d.expected) for d in deviations),
            detector=model.name,
        )


def build_default() -> WindowScorer:
    """The configuration chosen from the evaluation table (see pipeline/detect/README.md)."""
    return WindowScorer(ScorerConfig(detector="red"))
