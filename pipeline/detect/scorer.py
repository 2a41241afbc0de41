"""The pipeline's entry point: one anomaly model per (service, operation) series.

For each closed window the worker's judge (:mod:`pipeline.judge`) calls
:meth:`WindowScorer.score` with the window's RED features and gets a
:class:`Verdict`; the model learns the window right after scoring it.
:meth:`WindowScorer.dumps` / :meth:`WindowScorer.loads` serialise every model as
one versioned JSON blob checked field by field (``pipeline.checked``; never
pickle), for offline use. The worker does not use them: it keeps each series'
state in its ``detectors`` table (:mod:`pipeline.judge`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pipeline.checked import StateError, items, parse_json, record, text, to_json
from pipeline.detect.base import WARNING_SCORE, Detector, Features, Severity, severity_of
from pipeline.detect.registry import build_detector
from pipeline.detect.state import from_state

SeriesKey = tuple[str, str]
#: Version 1 was a pickle: never read (loading it could run code), rejected as ``version``.
_STATE_VERSION = 2


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

    detector: str = "robust"
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

    def dumps(self) -> bytes:
        """Every series' model state as one JSON blob (the worker stores series one by one)."""
        return to_json(
            {
                "v": _STATE_VERSION,
                "detector": self.config.detector,
                "params": dict(self.config.params),
                "models": [[s, o, m.to_state()] for (s, o), m in self.models.items()],
            }
        )

    @classmethod
    def loads(cls, blob: bytes, config: ScorerConfig | None = None) -> WindowScorer:
        """A scorer restored from :meth:`dumps`; it scores exactly as the original would.

        The detectors are built from ``config`` (default :class:`ScorerConfig`), not
        from the blob, which must name the same detector and parameters; every model
        state is checked. Raises :class:`~pipeline.checked.StateError`.
        """
        scorer = cls(config)
        data = parse_json(blob)
        if not isinstance(data, dict) or data.get("v") != _STATE_VERSION:
            raise StateError("version", f"scorer state version {str(data)[:40]!r}")
        data = record(data, "scorer", ["v", "detector", "params", "models"])
        stored = (data["detector"], data["params"])
        if stored != (scorer.config.detector, dict(scorer.config.params)):
            raise StateError("kind", f"stored for {str(stored)[:200]!r}, not {scorer.config}")
        if not isinstance(data["models"], list):
            raise StateError("schema", "scorer.models: expected a list")
        for entry in data["models"]:
            service, operation, state = items(entry, "scorer.models[]", 3)
            key = (text(service, "scorer.models[]"), text(operation, "scorer.models[]"))
            scorer.models[key] = from_state(state, scorer._factory())
        return scorer


def build_default() -> WindowScorer:
    """The configuration chosen from the evaluation table (see pipeline/detect/README.md)."""
    return WindowScorer(ScorerConfig(detector="robust"))
