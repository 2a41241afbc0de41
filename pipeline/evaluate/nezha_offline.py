"""Judge a Nezha replay's closed windows offline, in seconds (pure but for the file I/O).

The windows a replay closes do not depend on its pace (docs/detection.md), so a
detector can be iterated on them without Kafka or a worker: ``spanstream
evaluate --nezha PATH --dump-windows FILE`` writes the closed windows of a real
replay, with its fault times on the replay timeline, to a JSON-lines file;
``spanstream evaluate --windows FILE`` feeds them through
:class:`~pipeline.judge.WindowJudge` in close order (window end, then series)
and scores the anomalous windows exactly as :mod:`pipeline.evaluate.nezha_score`
scores the worker's ``spanstream_anomalies`` rows.

File format, one JSON object a line: first ``{"kind": "meta", "t0_ns", "t1_ns",
"window_s", "faults": [{"label", "service", "kind", "inject_ns", "clamped_s"}]}``,
then one ``{"kind": "window", ...}`` per closed window (the fields of
:class:`~pipeline.windows.series.ClosedWindow`, without exemplars). A line that
does not parse is an error naming the file and line (it is your own dump).

>>> meta = {"kind": "meta", "t0_ns": 0, "t1_ns": 120 * NS_PER_S, "window_s": 60, "faults": []}
>>> w = {"kind": "window", "service": "s", "operation": "o", "window_start_ns": 0,
...      "window_end_ns": 60 * NS_PER_S, "requests": 5, "errors": 0, "error_ratio": 0.0,
...      "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "max_ms": 4.0, "late_spans": 0}
>>> data = parse_lines([json.dumps(meta), json.dumps(w)], "f")
>>> len(data.windows), judge_windows(data.windows)
(1, [])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.detect.scorer import ScorerConfig
from pipeline.errors import ConfigError
from pipeline.evaluate.nezha_score import (
    NS_PER_S,
    AlertState,
    AlertWindow,
    Report,
    ScoredFault,
    episode_windows,
    score,
)
from pipeline.judge import WindowJudge
from pipeline.windows.series import ClosedWindow

WINDOW_FIELDS = (
    "service",
    "operation",
    "window_start_ns",
    "window_end_ns",
    "requests",
    "errors",
    "error_ratio",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "late_spans",
)


@dataclass(frozen=True)
class Replayed:
    """A dumped replay: its closed windows and labelled faults on the replay timeline."""

    t0_ns: int
    t1_ns: int
    window_s: int
    faults: tuple[ScoredFault, ...]
    windows: tuple[ClosedWindow, ...]


def meta_line(
    t0_ns: int, t1_ns: int, window_s: int, faults: Sequence[ScoredFault]
) -> dict[str, Any]:
    """The first line of a dump."""
    return {
        "kind": "meta",
        "t0_ns": t0_ns,
        "t1_ns": t1_ns,
        "window_s": window_s,
        "faults": [f.__dict__ for f in faults],
    }


def window_line(row: Sequence[Any]) -> dict[str, Any]:
    """One closed window from a ``spanstream_red_metrics`` row in :data:`WINDOW_FIELDS` order."""
    out = {"kind": "window", **dict(zip(WINDOW_FIELDS, row, strict=True))}
    for name in ("window_start_ns", "window_end_ns", "requests", "errors", "late_spans"):
        out[name] = int(out[name])
    for name in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
        out[name] = float(out[name])
    out["error_ratio"] = out["errors"] / out["requests"] if out["requests"] else 0.0
    return out


def _window(data: dict[str, Any]) -> ClosedWindow:
    return ClosedWindow(**{k: data[k] for k in WINDOW_FIELDS}, exemplars=())


def parse_lines(lines: Iterable[str], name: str) -> Replayed:
    """Parse a dump; ``ConfigError`` naming the line on anything else."""
    meta: dict[str, Any] | None = None
    windows: list[ClosedWindow] = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if data["kind"] == "meta":
                meta = data
            else:
                windows.append(_window(data))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"--windows {name}: line {i}: {exc}") from None
    if meta is None:
        raise ConfigError(f"--windows {name}: no meta line")
    try:
        faults = tuple(ScoredFault(**f) for f in meta["faults"])
        return Replayed(
            int(meta["t0_ns"]), int(meta["t1_ns"]), int(meta["window_s"]), faults, tuple(windows)
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--windows {name}: meta line: {exc}") from None


def read_file(path: Path) -> Replayed:
    try:
        with path.open(encoding="utf-8") as f:
            return parse_lines(f, str(path))
    except OSError as exc:
        raise ConfigError(f"--windows {path}: {exc.strerror}") from None


def judge_windows(
    windows: Sequence[ClosedWindow], config: ScorerConfig | None = None
) -> list[AlertWindow]:
    """The episodes' windows, as the replay reads them from the worker's alert topic.

    Judged in close order; only the published versions are kept (onset, severity
    rise, resolution), as on the topic.
    """
    judge = WindowJudge(config)
    state: dict[str, object] = {}
    ordered = sorted(windows, key=lambda w: (w.window_end_ns, w.service, w.operation))
    states = [
        AlertState(
            a.alert_id, a.window.service, a.status, a.window.window_start_ns, a.onset_start_ns
        )
        for a in judge.judge(ordered, state)
        if a.publish
    ]
    window_ns = ordered[-1].window_end_ns - ordered[-1].window_start_ns if ordered else NS_PER_S
    return episode_windows(states, window_ns)


def evaluate(
    data: Replayed, config: ScorerConfig | None = None, fault_seconds: int = 120
) -> Report:
    """The per-fault report of ``data`` judged by ``config`` (default: the worker's)."""
    return score(
        data.faults,
        judge_windows(data.windows, config),
        data.t0_ns,
        data.t1_ns,
        window_ns=data.window_s * NS_PER_S,
        fault_ns=fault_seconds * NS_PER_S,
    )
