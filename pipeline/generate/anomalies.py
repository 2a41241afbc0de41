"""Injectable, labelled faults: latency spikes, error bursts, saturation and traffic drops.

An anomaly is given on the command line as ``KIND:key=value,...`` with times
in seconds from the stream start::

    latency_spike:service=payment,start=300,duration=120,factor=8
    error_burst:service=payment,op=oteldemo.PaymentService/Charge,start=60,duration=30,rate=0.5
    saturation:service=checkout,instance=checkout-66a1-2,start=60,duration=300,factor=6,rate=0.1
    error_burst:service=cart,version=1.10.0,start=60,duration=120,rate=0.4
    traffic_drop:start=600,duration=60,factor=0.1

A fault hits the spans the matching service emits for the matching operation
(``op`` = span name), optionally only on one ``instance`` (a pod name,
``k8s.pod.name``, or a node, ``host.name``) or one ``version``
(``service.version``). It propagates as calls do (:mod:`pipeline.generate.traces`):
children run inside their parents, so callers are slower by the added time, and
a failed call fails its caller or is retried. ``saturation`` is a queue
building up: latency grows from 1x to ``factor`` over the first half of the
fault and holds, and calls time out (error) with up to ``rate``, growing alike.

>>> a = parse_anomaly("latency_spike:service=payment,start=300,duration=120,factor=8")
>>> a.kind, a.service, a.factor, a.start_s, a.duration_s
('latency_spike', 'payment', 8.0, 300.0, 120.0)
>>> s = AnomalySet([a], stream_start_ns=0)
>>> s.latency_factor("payment", "x", 310 * 10**9), s.latency_factor("payment", "x", 0)
(8.0, 1.0)
>>> parse_anomaly("latency_spike:colour=red")
Traceback (most recent call last):
...
pipeline.errors.ConfigError: --anomaly 'latency_spike:colour=red': unknown key 'colour'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError
from pipeline.generate.topology import SERVICES, node_of

NS = 1_000_000_000

#: Kind -> (parameter name, default) for the kind's strength.
KINDS = {
    "latency_spike": ("factor", 5.0),
    "error_burst": ("rate", 0.5),
    "traffic_drop": ("factor", 0.1),
    "saturation": ("factor", 6.0),
}
#: Saturation's timeout share at full strength unless ``rate=`` says otherwise.
SATURATION_RATE = 0.1
_KEYS = {"service", "op", "instance", "version", "start", "duration", "factor", "rate"}


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One anomaly: what, where (service and optionally op = span name), when, how strong.

    ``factor`` multiplies latency (``latency_spike``) or the trace rate
    (``traffic_drop``); ``rate`` is the error probability of matching spans
    during an ``error_burst`` (at full strength of a ``saturation``). No ``service``
    means every service; ``instance`` (pod or node) and ``version`` narrow it further.
    """

    kind: str
    start_s: float
    duration_s: float
    service: str | None = None
    op: str | None = None
    factor: float = 1.0
    rate: float = 0.0
    instance: str | None = None
    version: str | None = None

    def window_ns(self, stream_start_ns: int) -> tuple[int, int]:
        """Absolute [start, end) of the anomaly in Unix nanoseconds."""
        start = stream_start_ns + int(self.start_s * NS)
        return start, start + int(self.duration_s * NS)

    def matches(self, service: str, op: str, pod: str = "") -> bool:
        """Whether a span of ``service`` named ``op``, emitted on ``pod``, is affected."""
        if self.service not in (None, service) or self.op not in (None, op):
            return False
        if self.instance is not None and self.instance not in (pod, node_of(pod)):
            return False
        return self.version is None or (
            service in SERVICES and SERVICES[service].version_of(pod) == self.version
        )

    def strength(self, t_ns: int, stream_start_ns: int) -> float:
        """Share of full strength at ``t_ns``: 1, or saturation's ramp over the first half."""
        if self.kind != "saturation":
            return 1.0
        start, end = self.window_ns(stream_start_ns)
        return min(1.0, 2.0 * (t_ns - start) / max(end - start, 1))

    def label(self, stream_start_ns: int) -> dict[str, Any]:
        """The manifest label: kind, service, op, instance, version, start/end ns, strength."""
        start, end = self.window_ns(stream_start_ns)
        strength = KINDS[self.kind][0]
        label = {
            "kind": self.kind,
            "service": self.service,
            "op": self.op,
            "instance": self.instance,
            "version": self.version,
            "start_ns": start,
            "end_ns": end,
            strength: getattr(self, strength),
        }
        if self.kind == "saturation":
            label["rate"] = self.rate
        return label


def _number(spec: str, key: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"--anomaly {spec!r}: {key}={raw!r} is not a number") from None


def parse_anomaly(spec: str) -> Anomaly:
    """Parse ``KIND:key=value,...``; raises ConfigError naming the bad part."""
    kind, _, rest = spec.partition(":")
    if kind not in KINDS:
        raise ConfigError(f"--anomaly {spec!r}: kind must be one of {', '.join(KINDS)}")
    fields: dict[str, str] = {}
    for part in filter(None, rest.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in _KEYS:
            raise ConfigError(f"--anomaly {spec!r}: unknown key {key!r}")
        fields[key] = value
    for required in ("start", "duration"):
        if required not in fields:
            raise ConfigError(f"--anomaly {spec!r}: {required}= is required")
    strength_key, default = KINDS[kind]
    strength = {strength_key: _number(spec, strength_key, fields.get(strength_key, str(default)))}
    if kind == "saturation":
        strength["rate"] = _number(spec, "rate", fields.get("rate", str(SATURATION_RATE)))
    anomaly = Anomaly(
        kind=kind,
        start_s=_number(spec, "start", fields["start"]),
        duration_s=_number(spec, "duration", fields["duration"]),
        service=fields.get("service") or None,
        op=fields.get("op") or None,
        instance=fields.get("instance") or None,
        version=fields.get("version") or None,
        **strength,
    )
    _check(spec, anomaly)
    return anomaly


def _check(spec: str, a: Anomaly) -> None:
    if a.start_s < 0 or a.duration_s <= 0:
        raise ConfigError(f"--anomaly {spec!r}: start must be >= 0 and duration > 0")
    if a.kind in ("error_burst", "saturation") and not 0.0 <= a.rate <= 1.0:
        raise ConfigError(f"--anomaly {spec!r}: rate must be within [0, 1]")
    if a.kind != "error_burst" and a.factor < 0:
        raise ConfigError(f"--anomaly {spec!r}: factor must be >= 0")


class AnomalySet:
    """The anomalies of one stream, answering "what applies to this span at this time"."""

    def __init__(self, anomalies: Sequence[Anomaly], stream_start_ns: int) -> None:
        self.anomalies = tuple(anomalies)
        self.stream_start_ns = stream_start_ns
        self._windows = [(a, *a.window_ns(stream_start_ns)) for a in self.anomalies]

    def _active(self, kinds: tuple[str, ...], t_ns: int) -> list[Anomaly]:
        # Called for every span: the common no-anomaly case must stay cheap.
        if not self._windows:
            return []
        return [a for a, s, e in self._windows if a.kind in kinds and s <= t_ns < e]

    def latency_factor(self, service: str, op: str, t_ns: int, pod: str = "") -> float:
        """Product of the active latency faults' factors for this span (1.0 if none)."""
        factor = 1.0
        for a in self._active(("latency_spike", "saturation"), t_ns):
            if a.matches(service, op, pod):
                factor *= 1.0 + (a.factor - 1.0) * a.strength(t_ns, self.stream_start_ns)
        return factor

    def error_rate(self, service: str, op: str, t_ns: int, base: float, pod: str = "") -> float:
        """The error probability for this span: the highest active fault's rate, or ``base``."""
        rates = [
            a.rate * a.strength(t_ns, self.stream_start_ns)
            for a in self._active(("error_burst", "saturation"), t_ns)
            if a.matches(service, op, pod)
        ]
        return max([base, *rates])

    def keep_probability(self, services: Iterable[str], t_ns: int) -> float:
        """Share of traces touching ``services`` kept at ``t_ns`` (traffic drops thin traffic)."""
        present = set(services)
        keep = 1.0
        for a in self._active(("traffic_drop",), t_ns):
            if a.service is None or a.service in present:
                keep *= min(a.factor, 1.0)
        return keep

    def labels(self) -> list[dict[str, Any]]:
        """Manifest labels of every anomaly."""
        return [a.label(self.stream_start_ns) for a in self.anomalies]
