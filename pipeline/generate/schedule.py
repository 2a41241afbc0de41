"""When traces arrive: a daily rate curve, Poisson arrivals and the anomalies' traffic drops.

:func:`generate_traces` is the pure stream of traces for one run: same
:class:`StreamSpec` (seed included), same traces, whatever the clock mode.

>>> day = 86_400
>>> round(rate_at(0, 100.0, 0.5, day), 1), round(rate_at(day // 2 * NS, 100.0, 0.5, day), 1)
(50.0, 150.0)
>>> spec = StreamSpec(seed=3, start_ns=0, rate=50.0, count=5)
>>> [t.trace_id_hex for t in generate_traces(spec)] == [
...     t.trace_id_hex for t in generate_traces(spec)]
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.generate.anomalies import Anomaly, AnomalySet
from pipeline.generate.traces import Trace, TraceFactory

NS = 1_000_000_000


def rate_at(t_ns: int, rate: float, amplitude: float, day_seconds: float) -> float:
    """Traces/s at ``t_ns``: ``rate`` swinging by ``amplitude`` from midnight low to noon peak."""
    phase = (t_ns / NS % day_seconds) / day_seconds
    return rate * (1.0 - amplitude * math.cos(2.0 * math.pi * phase))


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """Everything that determines the generated traces.

    Stops after ``count`` traces or at ``start_ns + duration_s``, whichever
    comes first (neither: endless). ``day_seconds`` is the length of one
    simulated day of the rate curve (86,400 for a real day).
    """

    seed: int
    start_ns: int
    rate: float
    count: int | None = None
    duration_s: float | None = None
    mean_spans: int = 20
    base_error_rate: float = 0.01
    amplitude: float = 0.3
    day_seconds: float = 86_400.0
    environment: str = "production"
    anomalies: tuple[Anomaly, ...] = ()

    def anomaly_set(self) -> AnomalySet:
        """The anomalies placed on this stream's timeline."""
        return AnomalySet(self.anomalies, self.start_ns)


def generate_traces(spec: StreamSpec) -> Iterator[Trace]:
    """Traces in arrival order; traffic drops remove traces, they are not counted."""
    rng = random.Random(spec.seed)
    anomalies = spec.anomaly_set()
    factory = TraceFactory(
        rng,
        mean_spans=spec.mean_spans,
        base_error_rate=spec.base_error_rate,
        environment=spec.environment,
        anomalies=anomalies,
    )
    end_ns = None if spec.duration_s is None else spec.start_ns + int(spec.duration_s * NS)
    t, sent = spec.start_ns, 0
    while (spec.count is None or sent < spec.count) and (end_ns is None or t < end_ns):
        trace = factory.build(t)
        services = {s.service for s in trace.spans}
        if rng.random() < anomalies.keep_probability(services, t):
            sent += 1
            yield trace
        current = rate_at(t, spec.rate, spec.amplitude, spec.day_seconds)
        t += max(1, int(rng.expovariate(current) * NS))
