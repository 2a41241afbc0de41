"""Labelled synthetic scenarios at window level (one 60 s window per step).

A per-window simulator is enough to exercise the detectors and is fast:
request counts are Poisson around a daily rate curve, latencies lognormal
(the window's p50/p95/p99 are computed from the sampled requests), errors
binomial. Anomalies multiply latency or traffic, or raise the error
probability, for a labelled stretch of windows. The first simulated day never
holds an event, so that every detector (Holt-Winters needs a full season)
is judged on the same events.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

WINDOWS_PER_DAY = 1440
SHIFT_EVENT_WINDOWS = 15
"""After a permanent level shift, this many windows are the event; later ones are the new normal."""


@dataclass(frozen=True)
class Operation:
    """Normal behaviour of one simulated operation."""

    rate: float = 300.0
    daily_amplitude: float = 0.5
    median_ms: float = 40.0
    sigma: float = 0.6
    error_p: float = 0.01
    load_latency: float = 0.0  # latency grows with load by this share at the daily peak


@dataclass
class Series:
    """Features per window and their labels for one operation."""

    features: list[dict[str, float]]
    labels: list[bool]


@dataclass
class Effects:
    """Per-window multipliers applied by a scenario (all neutral by default)."""

    rate: np.ndarray
    latency: np.ndarray
    error_p: np.ndarray
    labels: np.ndarray

    @classmethod
    def neutral(cls, n: int, error_p: float) -> Effects:
        """No anomaly anywhere."""
        return cls(np.ones(n), np.ones(n), np.full(n, error_p), np.zeros(n, dtype=bool))


def _percentiles(values: np.ndarray, counts: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Per-window percentiles (linear interpolation, as numpy's default) of grouped values.

    ``values`` holds the windows' samples back to back, ``counts`` their sizes;
    one global sort replaces a percentile call per window.
    """
    owner = np.repeat(np.arange(len(counts)), counts)
    # Sorting window + value squeezed into [0, 1) sorts by window, then value (one float sort).
    top = float(values.max(initial=0.0)) * 1.001 + 1e-12
    ordered = (np.sort(owner + values / top) - owner) * top
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.zeros((len(counts), len(qs)))
    has = counts > 0
    for j, q in enumerate(qs):
        pos = (counts[has] - 1) * q / 100.0
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, counts[has] - 1)
        frac = pos - lo
        base = starts[has]
        out[has, j] = ordered[base + lo] * (1 - frac) + ordered[base + hi] * frac
    return out


def simulate(op: Operation, eff: Effects, rng: np.random.Generator) -> Series:
    """Draw the window features of one operation under the given effects."""
    n = len(eff.labels)
    load = np.sin(2 * math.pi * np.arange(n) / WINDOWS_PER_DAY - math.pi / 2)  # trough at 00:00
    counts = rng.poisson(np.maximum(op.rate * (1 + op.daily_amplitude * load) * eff.rate, 0.0))
    median = op.median_ms * (1 + op.load_latency * (load + 1) / 2) * eff.latency
    latencies = rng.lognormal(np.repeat(np.log(median), counts), op.sigma)
    pct = _percentiles(latencies, counts, (50, 95, 99))
    errors = rng.binomial(counts, np.minimum(eff.error_p, 1.0))
    ratio = np.divide(errors, counts, out=np.zeros(n), where=counts > 0)
    features = [
        {
            "requests": float(counts[i]),
            "error_ratio": float(ratio[i]),
            "p50_ms": float(pct[i, 0]),
            "p95_ms": float(pct[i, 1]),
            "p99_ms": float(pct[i, 2]),
        }
        for i in range(n)
    ]
    return Series(features, [bool(v) for v in eff.labels])


def _starts(rng: np.random.Generator, n: int, per_day: int, length: int) -> list[int]:
    """Event starts after the first day, spread in equal slots with random offsets."""
    usable = n - WINDOWS_PER_DAY
    count = max(1, per_day * usable // WINDOWS_PER_DAY)
    slot = usable // count
    return [
        WINDOWS_PER_DAY + k * slot + int(rng.integers(60, max(61, slot - length - 60)))
        for k in range(count)
    ]


@dataclass(frozen=True)
class Bursts:
    """Multiply one effect by ``factor`` for ``length`` windows, ``per_day`` times a day."""

    effect: str
    factor: float
    length: int
    per_day: int

    def __call__(self, eff: Effects, rng: np.random.Generator) -> None:
        """Apply the bursts and label them."""
        for s in _starts(rng, len(eff.labels), self.per_day, self.length):
            getattr(eff, self.effect)[s : s + self.length] *= self.factor
            eff.labels[s : s + self.length] = True


def _drift(eff: Effects, rng: np.random.Generator) -> None:
    ramp, hold, peak = 40, 10, 2.2
    for s in _starts(rng, len(eff.labels), 2, ramp + hold):
        mult = np.concatenate([np.linspace(1.0, peak, ramp), np.full(hold, peak)])
        eff.latency[s : s + ramp + hold] *= mult
        # Labelled from when the drift is material (+10 %, the detectors' smallest
        # latency change worth an alert), not from its first invisible step.
        material = s + int(np.argmax(mult >= 1.10))
        eff.labels[material : s + ramp + hold] = True


def _level_shift(eff: Effects, rng: np.random.Generator) -> None:
    s = _starts(rng, len(eff.labels), 1, SHIFT_EVENT_WINDOWS)[0]
    eff.latency[s:] *= 1.8
    eff.labels[s : s + SHIFT_EVENT_WINDOWS] = True


def _nothing(eff: Effects, rng: np.random.Generator) -> None:
    return None


@dataclass(frozen=True)
class Scenario:
    """A named operation profile plus the anomalies injected into it."""

    name: str
    op: Operation
    inject: Callable[[Effects, np.random.Generator], None]

    def generate(self, days: int, seed: int) -> Series:
        """Simulate ``days`` days of windows, deterministic for a seed."""
        rng = np.random.default_rng(seed)
        eff = Effects.neutral(days * WINDOWS_PER_DAY, self.op.error_p)
        self.inject(eff, rng)
        return simulate(self.op, eff, rng)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("latency_spike", Operation(), Bursts("latency", 2.5, 5, 3)),
    Scenario("error_burst", Operation(), Bursts("error_p", 8.0, 5, 3)),
    Scenario("traffic_drop", Operation(), Bursts("rate", 0.3, 8, 3)),
    Scenario("latency_drift", Operation(), _drift),
    Scenario("daily_seasonality", Operation(daily_amplitude=0.8, load_latency=0.3), _nothing),
    Scenario("low_traffic", Operation(rate=3.0, error_p=0.02), Bursts("latency", 5.0, 5, 2)),
    Scenario("level_shift", Operation(), _level_shift),
)
