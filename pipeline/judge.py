"""Judge closed windows: score each with its series' model, then turn findings into alerts.

Pure: the caller passes a mapping for per-series state (a Faust table in the
worker, a dict in tests). Each series keeps its detector and its alert
episode together in one value, so a restarted worker scores and continues
episodes exactly where the previous one stopped instead of re-learning.

>>> from pipeline.windows.series import ClosedWindow
>>> judge = WindowJudge()
>>> state: dict[str, str] = {}
>>> w = ClosedWindow("shop", "GET /", 0, 60_000_000_000, 100, 0, 0.0, 10.0, 20.0, 30.0, 40.0,
...                  0, ())
>>> judge.judge([w], state)
[]
>>> sorted(state)
['["shop","GET /"]']
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

from pipeline.alerts import Alert, EpisodeTracker, Finding, WindowRef
from pipeline.detect.base import Detector
from pipeline.detect.scorer import ScorerConfig, WindowScorer, build_default
from pipeline.windows.assembler import series_key
from pipeline.windows.series import ClosedWindow

#: Per-series state as base64 text: the worker keeps it in a JSON-serialized Faust table.
StateStore = MutableMapping[str, str]


def features(window: ClosedWindow) -> dict[str, float]:
    """The detector's view of a window (RED: rate, errors, duration quantiles)."""
    return {
        "requests": float(window.requests),
        "error_ratio": window.error_ratio,
        "p50_ms": window.p50_ms,
        "p95_ms": window.p95_ms,
        "p99_ms": window.p99_ms,
    }


@dataclass
class _Series:
    model: Detector
    episodes: EpisodeTracker


class WindowJudge:
    """Scores windows series by series and tracks alert episodes."""

    def __init__(self, config: ScorerConfig | None = None) -> None:
        self._scorer = build_default() if config is None else WindowScorer(config)

    def judge(self, windows: Sequence[ClosedWindow], state: StateStore) -> list[Alert]:
        """Score ``windows`` in order; returns alert states (onsets, updates, resolutions)."""
        alerts: list[Alert] = []
        for window in windows:
            key = series_key(window.service, window.operation)
            series = self._load(key, state)
            self._scorer.models[(window.service, window.operation)] = series.model
            verdict = self._scorer.score((window.service, window.operation), features(window))
            finding = (
                Finding(verdict.score, verdict.severity, verdict.metrics, verdict.detector)
                if verdict.anomalous
                else None
            )
            ref = WindowRef(
                window.service,
                window.operation,
                window.window_start_ns,
                window.window_end_ns,
                window.exemplars,
            )
            alert = series.episodes.observe(ref, finding)
            if alert is not None:
                alerts.append(alert)
            state[key] = base64.b64encode(pickle.dumps(series)).decode()
            del self._scorer.models[(window.service, window.operation)]
        return alerts

    def _load(self, key: str, state: StateStore) -> _Series:
        blob = state.get(key)
        if blob is not None:
            series = pickle.loads(base64.b64decode(blob))
            assert isinstance(series, _Series)
            return series
        model = self._scorer.config.factory()()
        return _Series(model, EpisodeTracker())
