"""Keep traces slower than their operation's learned tail latency (online p99).

Which span is judged: the trace's root, or, when the root has not arrived at
decision time, its longest span (:meth:`TraceData.representative`). A slow
trace's root ends last and is often the span still missing, so the fallback
matters exactly for the traces this policy is for.

What is learned: every span of every decided trace updates a forgetting
histogram (:class:`DecayingHistogram`) for its own ``(service, operation)``, so
each operation's distribution is its spans' durations whatever trace they sat
in, and the fallback span is judged against an unbiased threshold.

Order: :meth:`pipeline.sampling.policy.PolicySet.decide` evaluates first and observes
after, for every trace whichever policy kept it; a trace is judged against a
threshold learned from earlier traces only, and a burst of slow traces is kept
until it has pushed the threshold up (about 1% of a horizon later).

The policy fires only once the operation has ``min_samples`` weight; an
optional ``floor_ns`` keeps fast operations' jitter from counting as slow and an
optional ``ceiling_ns`` keeps anything slower than it, even before learning.

>>> state = LatencyState(max_keys=100)
>>> state.observe("api", "GET /", 1_000_000)
>>> state.samples("api", "GET /"), state.samples("api", "other")
(1.0, 0.0)
>>> LatencyState.from_dict(state.to_dict()).samples("api", "GET /")
1.0
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from pipeline import native
from pipeline.model import SpanHead
from pipeline.sampling.decaying_histogram import DecayingHistogram
from pipeline.sampling.policy import Decision, TraceData

STATE_VERSION = 1
#: The cached threshold of an operation is recomputed after this many new spans.
REFRESH_EVERY = 32


class _OpLatency:
    """One operation's histogram; ``hist`` and ``since_refresh`` are what
    ``native.latency_observe`` reads and writes."""

    __slots__ = ("hist", "since_refresh", "threshold")

    def __init__(self, hist: DecayingHistogram) -> None:
        self.hist = hist
        self.threshold = 0.0
        self.since_refresh = REFRESH_EVERY


class LatencyState:
    """Per-``(service, operation)`` duration histograms (ns), at most ``max_keys`` of them.

    The least recently observed operation is forgotten first. Plain data:
    :meth:`to_dict`/:meth:`from_dict` round-trip it through JSON for restarts.
    """

    def __init__(
        self,
        quantile: float = 0.99,
        accuracy: float = 0.02,
        horizon: float = 10_000.0,
        max_bins: int = 256,
        max_keys: int = 10_000,
    ) -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {quantile}")
        self.quantile = quantile
        self.accuracy = accuracy
        self.horizon = horizon
        self.max_bins = max_bins
        self.max_keys = max_keys
        # Every histogram's bucket scale, computed as DecayingHistogram computes it.
        self._inv_log_gamma = 1.0 / math.log((1.0 + accuracy) / (1.0 - accuracy))
        self._ops: OrderedDict[tuple[str, str], _OpLatency] = OrderedDict()

    def observe(self, service: str, operation: str, duration_ns: int) -> None:
        """Count one span duration for its operation."""
        key = (service, operation)
        op = self._ops.get(key)
        if op is None:
            op = _OpLatency(DecayingHistogram(self.accuracy, self.horizon, self.max_bins))
            self._ops[key] = op
            if len(self._ops) > self.max_keys:
                self._ops.popitem(last=False)
        else:
            self._ops.move_to_end(key)
        op.hist.add(float(duration_ns))
        op.since_refresh += 1

    def observe_spans(self, spans: Sequence[SpanHead]) -> None:
        """:meth:`observe` every span in order, grouped by operation when that is exact.

        Grouped (:func:`pipeline.native.latency_observe`, one native call per
        trace), each operation is looked up once and its durations go into its
        histogram together; each histogram sees its own values in the same
        order, and visiting operations in the order of their last span leaves the
        recency order as span-by-span observing would. Only evictions (a new
        operation past ``max_keys``) depend on the interleaving, so when one could
        happen the spans are observed one by one.
        """
        if len(self._ops) + len(spans) > self.max_keys:
            for span in spans:
                self.observe(span.service_name, span.operation, span.duration_ns)
            return
        native.latency_observe(
            self._ops, spans, self._new_op, self._inv_log_gamma, self.max_bins, self.horizon
        )

    def _new_op(self) -> _OpLatency:
        return _OpLatency(DecayingHistogram(self.accuracy, self.horizon, self.max_bins))

    def samples(self, service: str, operation: str) -> float:
        """The operation's current (decayed) sample weight; 0.0 if never seen."""
        op = self._ops.get((service, operation))
        return 0.0 if op is None else op.hist.count

    def threshold(self, service: str, operation: str) -> float:
        """The operation's learned ``quantile`` in ns (refreshed every few spans); 0.0 if unseen."""
        op = self._ops.get((service, operation))
        if op is None:
            return 0.0
        if op.since_refresh >= REFRESH_EVERY:
            op.threshold = op.hist.quantile(self.quantile)
            op.since_refresh = 0
        return op.threshold

    def __len__(self) -> int:
        return len(self._ops)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot, oldest-observed operation first."""
        return {
            "version": STATE_VERSION,
            "quantile": self.quantile,
            "accuracy": self.accuracy,
            "horizon": self.horizon,
            "max_bins": self.max_bins,
            "max_keys": self.max_keys,
            "ops": [
                {"service": s, "operation": o, "hist": op.hist.to_dict()}
                for (s, o), op in self._ops.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyState:
        """Rebuild from :meth:`to_dict` output; rejects unknown versions."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported latency state version {data.get('version')!r}")
        state = cls(
            float(data["quantile"]),
            float(data["accuracy"]),
            float(data["horizon"]),
            int(data["max_bins"]),
            int(data["max_keys"]),
        )
        for entry in data["ops"]:
            hist = DecayingHistogram.from_dict(entry["hist"])
            if (hist.accuracy, hist.horizon, hist.max_bins) != (
                state.accuracy,
                state.horizon,
                state.max_bins,
            ):
                raise ValueError("latency state: a histogram's parameters differ from the state's")
            state._ops[(str(entry["service"]), str(entry["operation"]))] = _OpLatency(hist)
        return state


def latency_groups_of(
    spans: Sequence[SpanHead],
) -> list[tuple[tuple[str, str], list[int]]]:
    """The reference of ``native.latency_groups``: each ``(service, operation)`` with its
    durations in span order, the groups in the order of their last span.

    >>> from pipeline.model import SpanHead
    >>> def head(op: str, ns: int) -> SpanHead:
    ...     return SpanHead("t", "s", "", 0, ns, "api", op, False, 0, b"", 0, 0, None, None)
    >>> latency_groups_of([head("a", 1), head("b", 2), head("a", 3)])
    [(('api', 'b'), [2]), (('api', 'a'), [1, 3])]
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for span in spans:
        key = (span.service_name, span.operation)
        durations = groups.pop(key, [])
        durations.append(span.duration_ns)
        groups[key] = durations
    return list(groups.items())


def latency_observe_of(
    ops: OrderedDict[tuple[str, str], _OpLatency],
    spans: Sequence[SpanHead],
    new_op: Callable[[], _OpLatency],
    inv_log_gamma: float,
    max_bins: int,
    horizon: float,
) -> None:
    """The reference of ``native.latency_observe``: each group of
    :func:`latency_groups_of`, found in ``ops`` or added by ``new_op()``, moved to the
    end, learns its durations value by value (the histograms' own parameters, which
    the native code gets as ``inv_log_gamma``, ``max_bins`` and ``horizon``)."""
    for key, durations in latency_groups_of(spans):
        op = ops.get(key)
        if op is None:
            op = ops[key] = new_op()
        else:
            ops.move_to_end(key)
        for duration in durations:
            op.hist.add(float(duration))
        op.since_refresh += len(durations)


class LatencyPolicy:
    """KEEP a trace whose representative span is slower than its operation's threshold."""

    def __init__(
        self,
        state: LatencyState | None = None,
        min_samples: float = 100.0,
        floor_ns: int = 0,
        ceiling_ns: int | None = None,
        name: str = "latency",
    ) -> None:
        self.name = name
        self.state = state if state is not None else LatencyState()
        self.min_samples = min_samples
        self.floor_ns = floor_ns
        self.ceiling_ns = ceiling_ns

    def evaluate(self, trace: TraceData) -> Decision:
        """Judge the root (or longest) span against the learned threshold."""
        span = trace.representative()
        if span is None:
            return Decision.DROP
        if self.ceiling_ns is not None and span.duration_ns > self.ceiling_ns:
            return Decision.KEEP
        if self.state.samples(span.service_name, span.operation) < self.min_samples:
            return Decision.DROP
        limit = max(self.state.threshold(span.service_name, span.operation), self.floor_ns)
        return Decision.KEEP if span.duration_ns > limit else Decision.DROP

    def observe(self, trace: TraceData) -> None:
        """Learn every span's duration (called after the decision, for every trace)."""
        self.state.observe_spans(trace.spans)
