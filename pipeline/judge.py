"""Judge closed windows: score each with its series' model, then turn findings into alerts.

Pure: the caller passes a mapping for per-series state (a Faust table in the
worker, a dict in tests). Each series keeps its detector and its alert
episode together in one value, so a restarted worker scores and continues
episodes exactly where the previous one stopped instead of re-learning.

The value is JSON (``{"v": 2, "model": ..., "episodes": ...}``) and untrusted:
the table is restored from a changelog topic anyone with write access can
append to. Each detector checks its own state (``pipeline.checked``); a
value that does not parse is counted and logged (``pipeline.rejections``) and
its series starts over (warm-up, no open episode) while every other series is
judged as usual. Version 1 was base64 pickle: it is never read, so a worker
upgraded from it rejects each series once (``legacy_pickle``) and re-learns.

>>> from pipeline.windows.series import ClosedWindow
>>> judge = WindowJudge()
>>> state: dict[str, object] = {}
>>> w = ClosedWindow("shop", "GET /", 0, 60_000_000_000, 100, 0, 0.0, 10.0, 20.0, 30.0, 40.0,
...                  0, ())
>>> judge.judge([w], state)
[]
>>> sorted(state)
['["shop","GET /"]']
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.alerts import Alert, EpisodeTracker, Finding, WindowRef
from pipeline.checked import StateError, record
from pipeline.detect.base import Detector
from pipeline.detect.scorer import ScorerConfig, Verdict, WindowScorer, build_default
from pipeline.detect.state import from_state
from pipeline.rejections import Rejections
from pipeline.windows.assembler import series_key
from pipeline.windows.series import ClosedWindow

#: Per-series state as JSON values, encoded by the table view (``pipeline.faust.tables``).
StateStore = MutableMapping[str, Any]
#: Format version of a series' value; 1 was base64(pickle) and is rejected, never read.
STATE_VERSION = 2
#: What a rejected series does next (the log line's end).
STARTS_OVER = "the series starts its warm-up over"


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
        self.rejections = Rejections("detectors")

    def judge(self, windows: Sequence[ClosedWindow], state: StateStore) -> list[Alert]:
        """Score ``windows`` in order; returns alert states (onsets, updates, resolutions)."""
        alerts: list[Alert] = []
        for window in windows:
            key = series_key(window.service, window.operation)
            series = self._load(key, state)
            try:
                verdict = self._score(window, series)
            except (ArithmeticError, ValueError, TypeError, IndexError, KeyError) as exc:
                # A restored state that passed its checks yet breaks the model: the
                # series starts over rather than failing every close from now on.
                self.rejections.reject(key, StateError("unusable", repr(exc)[:200]), STARTS_OVER)
                series = self._fresh()
                verdict = self._score(window, series)
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
            state[key] = {
                "v": STATE_VERSION,
                "model": series.model.to_state(),
                "episodes": series.episodes.to_dict(),
            }
        return alerts

    def _score(self, window: ClosedWindow, series: _Series) -> Verdict:
        key = (window.service, window.operation)
        self._scorer.models[key] = series.model
        try:
            return self._scorer.score(key, features(window))
        finally:
            del self._scorer.models[key]

    def _fresh(self) -> _Series:
        return _Series(self._scorer.config.factory()(), EpisodeTracker())

    def _load(self, key: str, state: StateStore) -> _Series:
        """The stored series, or a fresh one if there is none or it does not parse."""
        try:
            value = state.get(key)  # the table view raises StateError on bad bytes
            if value is None:
                return self._fresh()
            return self._parse(value)
        except StateError as exc:
            self.rejections.reject(key, exc, STARTS_OVER)
            return self._fresh()

    def _parse(self, value: object) -> _Series:
        if isinstance(value, str):  # version 1: base64(pickle), never unpickled
            raise StateError("legacy_pickle", "a version 1 (pickle) state")
        if not isinstance(value, dict):
            raise StateError("schema", f"series: expected an object, got {type(value).__name__}")
        if value.get("v") != STATE_VERSION:
            raise StateError("version", f"series state version {str(value.get('v'))[:20]!r}")
        data = record(value, "series", ["v", "model", "episodes"])
        model = from_state(data["model"], self._scorer.config.factory()())
        return _Series(model, EpisodeTracker.from_dict(data["episodes"]))
