"""The labelled fault set of ``spanstream evaluate --rca``: every service as root cause.

One timeline per seed: a warm-up, then faults one after another, each followed
by a quiet period. Per service, three faults: a latency spike on one of its
operations, an error burst (on the whole service or on one operation), and a
fault only on one instance (a pod or its node) or one version (the canary),
whose kind is drawn among latency, errors and saturation. Order, operations,
strengths, durations and quiet periods are drawn from the seed, so another seed
is another set: nothing is tuned to one draw.

>>> faults = fault_set(seed=1, window_s=15)
>>> len(faults.faults), sorted({f.anomaly.service for f in faults.faults}) == sorted(SERVICES)
(21, True)
>>> sum(f.attribute is not None for f in faults.faults)
7
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pipeline.enrich import operation_for
from pipeline.generate import attrs
from pipeline.generate.anomalies import Anomaly
from pipeline.generate.topology import OPS, SERVICES, Op

#: Windows of normal traffic before the first fault (detector and baseline warm-up).
WARMUP_WINDOWS = 60


@dataclass(frozen=True)
class Fault:
    """One injected fault and what a correct answer names."""

    anomaly: Anomaly
    #: The pipeline operation of the faulty op (None: the whole service).
    operation: str | None
    #: (attribute, value) an instance/version fault should be named by.
    attribute: tuple[str, str] | None


@dataclass(frozen=True)
class FaultSet:
    faults: tuple[Fault, ...]
    duration_s: float
    warmup_s: float


def pipeline_operation(op: Op) -> str:
    """The operation the enricher derives for ``op``'s own span."""
    if op.protocol in ("db", "redis"):
        raw = attrs.database(op, op.statement)
    elif op.protocol == "http":
        raw = attrs.server_http(op.method, op.route, op.route, 200, op.service, 0, "")
    elif op.protocol == "kafka":
        raw = attrs.messaging(op, "k", 0, 0)
    else:
        raw = {}
    return operation_for(op.name, {k: str(v) for k, v in raw.items()})


def _ops_of(service: str) -> list[Op]:
    return [op for op in OPS.values() if op.service == service]


def _latency(rng: random.Random, service: str, start: float, dur: float) -> Fault:
    op = rng.choice(_ops_of(service))
    a = Anomaly("latency_spike", start, dur, service, op.name, factor=round(rng.uniform(3, 10), 1))
    return Fault(a, pipeline_operation(op), None)


def _errors(rng: random.Random, service: str, start: float, dur: float) -> Fault:
    rate = round(rng.uniform(0.2, 0.7), 2)
    if rng.random() < 0.5:
        return Fault(Anomaly("error_burst", start, dur, service, rate=rate), None, None)
    op = rng.choice([o for o in _ops_of(service) if o.error_weight >= 1.0] or _ops_of(service))
    a = Anomaly("error_burst", start, dur, service, op.name, rate=rate)
    return Fault(a, pipeline_operation(op), None)


def _targeted(rng: random.Random, service: str, start: float, dur: float) -> Fault:
    svc = SERVICES[service]
    kind = rng.choice(("latency_spike", "error_burst", "saturation"))
    strength = {
        "latency_spike": {"factor": round(rng.uniform(5, 12), 1)},
        "error_burst": {"rate": round(rng.uniform(0.4, 0.9), 2)},
        "saturation": {
            "factor": round(rng.uniform(6, 14), 1),
            "rate": round(rng.uniform(0.05, 0.2), 2),
        },
    }[kind]
    if rng.random() < 0.5:
        pod = rng.choice(svc.hosts)
        a = Anomaly(kind, start, dur, service, instance=pod, **strength)  # type: ignore[arg-type]
        return Fault(a, None, ("k8s.pod.name", pod))
    a = Anomaly(kind, start, dur, service, version=svc.canary, **strength)  # type: ignore[arg-type]
    return Fault(a, None, ("service.version", svc.canary))


def fault_set(seed: int, window_s: int) -> FaultSet:
    """The faults of one seed's timeline (see the module docstring)."""
    rng = random.Random(seed)
    plan = [(s, maker) for s in SERVICES for maker in (_latency, _errors, _targeted)]
    rng.shuffle(plan)
    t = float(WARMUP_WINDOWS * window_s)
    faults = []
    for service, maker in plan:
        duration = rng.randint(4, 7) * window_s
        faults.append(maker(rng, service, t, float(duration)))
        t += duration + rng.randint(16, 24) * window_s
    return FaultSet(tuple(faults), t, float(WARMUP_WINDOWS * window_s))
