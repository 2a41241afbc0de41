"""Injectable, labelled anomalies: latency spikes, error bursts and traffic drops.

An anomaly is given on the command line as ``KIND:key=value,...`` with times
in seconds from the stream start::

    latency_spike:service=payment,start=300,duration=120,factor=8
    error_burst:service=payment,op=oteldemo.PaymentService/Charge,start=60,duration=30,rate=0.5
    traffic_drop:start=600,duration=60,factor=0.1

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

NS = 1_000_000_000

#: Kind -> (parameter name, default) for the kind's strength.
KINDS = {
    "latency_spike": ("factor", 5.0),
    "error_burst": ("rate", 0.5),
    "traffic_drop": ("factor", 0.1),
}
_KEYS = {"service", "op", "start", "duration", "factor", "rate"}


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One anomaly: what, where (service and optionally op = span name), when, how strong.

    ``factor`` multiplies latency (``latency_spike``) or the trace rate
    (``traffic_drop``); ``rate`` is the error probability of matching spans
    during an ``error_burst``. No ``service`` means every service.
    """

    kind: str
    start_s: float
    duration_s: float
    service: str | None = None
    op: str | None = None
    factor: float = 1.0
    rate: float = 0.0

    def window_ns(self, stream_start_ns: int) -> tuple[int, int]:
        """Absolute [start, end) of the anomaly in Unix nanoseconds."""
        start = stream_start_ns + int(self.start_s * NS)
        return start, start + int(self.duration_s * NS)

    def matches(self, service: str, op: str) -> bool:
        """Whether a span of ``service`` named ``op`` is affected."""
        return (self.service in (None, service)) and (self.op in (None, op))

    def label(self, stream_start_ns: int) -> dict[str, Any]:
        """The manifest label: kind, service, op, start/end ns and strength."""
        start, end = self.window_ns(stream_start_ns)
        strength = KINDS[self.kind][0]
        return {
            "kind": self.kind,
            "service": self.service,
            "op": self.op,
            "start_ns": start,
            "end_ns": end,
            strength: getattr(self, strength),
        }


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
    strength = _number(spec, strength_key, fields.get(strength_key, str(default)))
    anomaly = Anomaly(
        kind=kind,
        start_s=_number(spec, "start", fields["start"]),
        duration_s=_number(spec, "duration", fields["duration"]),
        service=fields.get("service") or None,
        op=fields.get("op") or None,
        **{strength_key: strength},
    )
    _check(spec, anomaly)
    return anomaly


def _check(spec: str, a: Anomaly) -> None:
    if a.start_s < 0 or a.duration_s <= 0:
        raise ConfigError(f"--anomaly {spec!r}: start must be >= 0 and duration > 0")
    if a.kind == "error_burst" and not 0.0 <= a.rate <= 1.0:
        raise ConfigError(f"--anomaly {spec!r}: rate must be within [0, 1]")
    if a.kind != "error_burst" and a.factor < 0:
        raise ConfigError(f"--anomaly {spec!r}: factor must be >= 0")


class AnomalySet:
    """The anomalies of one stream, answering "what applies to this span at this time"."""

    def __init__(self, anomalies: Sequence[Anomaly], stream_start_ns: int) -> None:
        self.anomalies = tuple(anomalies)
        self.stream_start_ns = stream_start_ns
        self._windows = [(a, *a.window_ns(stream_start_ns)) for a in self.anomalies]

    def _active(self, kind: str, t_ns: int) -> list[Anomaly]:
        # Called for every span: the common no-anomaly case must stay cheap.
        if not self._windows:
            return []
        return [a for a, s, e in self._windows if a.kind == kind and s <= t_ns < e]

    def latency_factor(self, service: str, op: str, t_ns: int) -> float:
        """Product of the active latency spikes' factors for this span (1.0 if none)."""
        factor = 1.0
        for a in self._active("latency_spike", t_ns):
            if a.matches(service, op):
                factor *= a.factor
        return factor

    def error_rate(self, service: str, op: str, t_ns: int, base: float) -> float:
        """The error probability for this span: the highest active burst's rate, or ``base``."""
        rates = [a.rate for a in self._active("error_burst", t_ns) if a.matches(service, op)]
        return max([base, *rates])

    def keep_probability(self, services: Iterable[str], t_ns: int) -> float:
        """Share of traces touching ``services`` kept at ``t_ns`` (traffic drops thin traffic)."""
        present = set(services)
        keep = 1.0
        for a in self._active("traffic_drop", t_ns):
            if a.service is None or a.service in present:
                keep *= min(a.factor, 1.0)
        return keep

    def labels(self) -> list[dict[str, Any]]:
        """Manifest labels of every anomaly."""
        return [a.label(self.stream_start_ns) for a in self.anomalies]
