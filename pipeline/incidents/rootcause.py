"""Rank an incident's root-cause candidates, best first, each with one line of evidence (pure).

Signals (:mod:`pipeline.incidents.signals`), per operation, over the incident's
windows against the operation's baseline (an EWMA of normal windows):

* **added self time**: calls x (mean self time - baseline), kept only where the
  mean grew by at least ``min_ratio``. Self time is where latency is added: a
  slow callee makes its callers' spans longer, not their self time.
* **originating errors** beyond the baseline's share: error spans with no
  erroring child are where errors start; callers that fail because a callee
  did carry an erroring child and are not counted.

Each signal is turned into shares of the incident's total; an operation scores
its error share (when the incident has significant originating errors) plus a
third of its latency share, or its latency share alone. A service scores the sum
of its operations (a fault of a whole service spreads over its operations); the
services first to alert get a small ``first_bonus`` (timing breaks ties). A service
with no signal of its own is no candidate. The evidence names the service's
callers in the incident: they inherit.

>>> from pipeline.incidents.signals import OpKey, OpStats
>>> base = Baselines()
>>> normal = {OpKey("pay", "Charge"): OpStats(100, 1, 100 * 8_000_000),
...           OpKey("web", "GET /"): OpStats(100, 1, 100 * 2_000_000)}
>>> base.learn(normal)
>>> slow = {OpKey("pay", "Charge"): OpStats(100, 1, 100 * 64_000_000),
...         OpKey("web", "GET /"): OpStats(100, 1, 100 * 2_100_000)}
>>> top = rank(slow, base, {("web", "pay")}, {"web": 0})[0]
>>> top.service, top.operation, top.evidence
('pay', 'Charge', 'pay Charge: self time 8.0x baseline (+56 ms per call); callers web inherit it')
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.checked import StateError, items, number
from pipeline.incidents.signals import OpKey, OpStats

#: Operations one baseline table keeps at most (the least called are dropped).
MAX_BASELINES = 4096


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ranked root cause: service, its most implicated operation, score and evidence."""

    service: str
    operation: str
    score: float
    evidence: str


@dataclass(slots=True)
class _Base:
    self_ms: float
    origin_ratio: float
    calls: float


class Baselines:
    """Per-operation EWMA of mean self time, originating-error ratio and calls per window."""

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = alpha
        self.ops: dict[OpKey, _Base] = {}

    def learn(self, ops: Mapping[OpKey, OpStats]) -> None:
        """Fold one normal window's operations in."""
        a = self.alpha
        for key, s in ops.items():
            if not s.calls:
                continue
            ratio = s.origin_errors / s.calls
            b = self.ops.get(key)
            if b is None:
                self.ops[key] = _Base(s.self_mean_ms, ratio, float(s.calls))
                continue
            b.self_ms += a * (s.self_mean_ms - b.self_ms)
            b.origin_ratio += a * (ratio - b.origin_ratio)
            b.calls += a * (s.calls - b.calls)
        if len(self.ops) > MAX_BASELINES:
            keep = sorted(self.ops.items(), key=lambda kv: -kv[1].calls)[:MAX_BASELINES]
            self.ops = dict(keep)

    def get(self, key: OpKey) -> _Base | None:
        return self.ops.get(key)

    def to_dict(self) -> list[list[Any]]:
        """JSON-safe state."""
        return [
            [k.service, k.operation, b.self_ms, b.origin_ratio, b.calls]
            for k, b in self.ops.items()
        ]

    @classmethod
    def from_dict(cls, data: object, alpha: float = 0.1) -> Baselines:
        """Inverse of :meth:`to_dict`; raises ``StateError`` on anything else (untrusted)."""
        if not isinstance(data, list) or len(data) > MAX_BASELINES:
            raise StateError("schema", f"baselines: a list of at most {MAX_BASELINES}")
        out = cls(alpha)
        for row in data:
            service, operation, self_ms, ratio, calls = items(row, "baselines[]", 5)
            if not isinstance(service, str) or not isinstance(operation, str):
                raise StateError("schema", "baselines[]: service and operation strings expected")
            out.ops[OpKey(service, operation)] = _Base(
                number(self_ms, "baselines[].self_ms", 0.0),
                number(ratio, "baselines[].origin_ratio", 0.0, 1.0),
                number(calls, "baselines[].calls", 0.0),
            )
        return out


@dataclass(frozen=True, slots=True)
class RankConfig:
    """Thresholds of the ranking (see the module docstring)."""

    min_ratio: float = 1.3
    first_bonus: float = 0.05
    min_excess_errors: float = 5.0
    #: Originating errors must also rise by this share of the calls.
    min_excess_ratio: float = 0.02
    limit: int = 5


@dataclass(slots=True)
class _Score:
    added_ms: float = 0.0
    ratio: float = 1.0
    excess_errors: float = 0.0
    origin_errors: int = 0
    calls: int = 0


def _score(stats: OpStats, base: _Base, config: RankConfig) -> _Score:
    out = _Score(calls=stats.calls, origin_errors=stats.origin_errors)
    if stats.calls == 0:
        return out
    ratio = stats.self_mean_ms / max(base.self_ms, 1e-3)
    if ratio >= config.min_ratio:
        out.added_ms, out.ratio = (stats.self_mean_ms - base.self_ms) * stats.calls, ratio
    expected = base.origin_ratio * stats.calls
    excess = stats.origin_errors - expected
    floor = max(config.min_excess_errors, config.min_excess_ratio * stats.calls)
    if excess >= floor + 3.0 * math.sqrt(expected):
        out.excess_errors = excess
    return out


def _evidence(key: OpKey, s: _Score, base: _Base, callers: list[str], errors_first: bool) -> str:
    parts = []
    latency = f"self time {s.ratio:.1f}x baseline (+{s.added_ms / max(s.calls, 1):.0f} ms per call)"
    errors = (
        f"{s.origin_errors} of {s.calls} calls fail here (errors originate: no erroring child;"
        f" baseline {base.origin_ratio:.1%})"
    )
    if s.excess_errors and errors_first:
        parts.append(errors)
    if s.added_ms:
        parts.append(latency)
    if s.excess_errors and not errors_first:
        parts.append(errors)
    line = f"{key.service} {key.operation}: " + ("; ".join(parts) or "no own signal")
    if callers:
        line += f"; callers {', '.join(callers)} inherit it"
    return line


def _op_scores(
    ops: Mapping[OpKey, OpStats], baselines: Baselines, config: RankConfig
) -> tuple[dict[OpKey, tuple[_Score, _Base]], dict[OpKey, float], bool]:
    """Each operation's signals, its score, and whether errors lead the incident."""
    scored = {k: (_score(s, b, config), b) for k, s in ops.items() if (b := baselines.get(k))}
    total_ms = sum(s.added_ms for s, _ in scored.values()) or 1.0
    total_err = sum(s.excess_errors for s, _ in scored.values())
    errors_first = total_err > 0
    op_score = {
        k: (s.excess_errors / total_err + s.added_ms / total_ms / 3.0)
        if errors_first
        else s.added_ms / total_ms
        for k, (s, _) in scored.items()
    }
    return scored, op_score, errors_first


def rank(
    ops: Mapping[OpKey, OpStats],
    baselines: Baselines,
    edges: Collection[tuple[str, str]],
    first_alerts: Mapping[str, int],
    config: RankConfig | None = None,
) -> list[Candidate]:
    """Service candidates best first (each with its top operation), for the incident's windows.

    ``ops``: the operations' signals summed over the incident's windows;
    ``first_alerts``: service -> start of the first window it alerted in.
    """
    config = config or RankConfig()
    scored, op_score, errors_first = _op_scores(ops, baselines, config)
    first = min(first_alerts.values(), default=0)
    services: dict[str, float] = {}
    for key, value in op_score.items():
        services[key.service] = services.get(key.service, 0.0) + value
    for service in services:
        if first_alerts.get(service) == first:
            services[service] += config.first_bonus
    out: list[Candidate] = []
    for service, score in sorted(services.items(), key=lambda kv: (-kv[1], kv[0])):
        if score <= config.first_bonus:
            continue  # no signal of its own (a traffic drop has none): not a candidate
        key = max((k for k in op_score if k.service == service), key=lambda k: (op_score[k], k))
        callers = sorted(
            {c for c, s in edges if s == service and c in first_alerts and c != service}
        )
        s, base = scored[key]
        evidence = _evidence(key, s, base, callers, errors_first)
        out.append(Candidate(service, key.operation, round(score, 4), evidence))
    return out[: config.limit]


def top_operations(
    ops: Mapping[OpKey, OpStats], baselines: Baselines, config: RankConfig | None = None
) -> list[OpKey]:
    """Operations best first by the same score (for operation-level accuracy)."""
    config = config or RankConfig()
    _, op_score, _ = _op_scores(ops, baselines, config)
    return sorted(op_score, key=lambda k: (-op_score[k], k))[: config.limit]
