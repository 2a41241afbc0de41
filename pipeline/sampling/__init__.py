"""Tail sampling: buffer each trace's spans, decide once it is quiet, keep what matters.

In the style of the Collector's tail-sampling processor: one policy per module
(:mod:`.errors`, :mod:`.latency`, :mod:`.anomaly`, :mod:`.exemplar`,
:mod:`.probabilistic`), combined by :class:`~.policy.PolicySet` (first KEEP wins
and names the reason); :mod:`.buffer` holds the decision timer and decision
cache; :mod:`.counters` counts volume in and kept. All pure: no Kafka, no storage.
Which offsets the decisions make safe to commit is the ingest stage's business
(:mod:`pipeline.ingest.commit`).
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.sampling.anomaly import AnomalyFlags, AnomalyPolicy
from pipeline.sampling.buffer import Cause, DecidedTrace, TraceBuffer
from pipeline.sampling.counters import SamplingStats
from pipeline.sampling.errors import ErrorPolicy
from pipeline.sampling.exemplar import ExemplarPolicy, ExemplarRequests
from pipeline.sampling.latency import LatencyPolicy, LatencyState
from pipeline.sampling.policy import Decision, Policy, PolicySet, TraceData, Verdict
from pipeline.sampling.probabilistic import ProbabilisticPolicy

__all__ = [
    "AnomalyFlags",
    "AnomalyPolicy",
    "Cause",
    "DecidedTrace",
    "Decision",
    "ErrorPolicy",
    "ExemplarPolicy",
    "ExemplarRequests",
    "LatencyPolicy",
    "LatencyState",
    "Policy",
    "PolicySet",
    "ProbabilisticPolicy",
    "SamplingStats",
    "TraceBuffer",
    "TraceData",
    "Verdict",
    "standard_policies",
]


def standard_policies(
    baseline_rate: float,
    latency: LatencyState,
    flags: AnomalyFlags,
    exemplars: ExemplarRequests,
) -> Sequence[Policy]:
    """The pipeline's policy order: the most specific reason is the one recorded.

    Exemplars first (an alert names them), then errors, anomalies, latency and
    finally the hash baseline, which only speaks for otherwise unremarkable traces.
    """
    return (
        ExemplarPolicy(exemplars),
        ErrorPolicy(),
        AnomalyPolicy(flags),
        LatencyPolicy(latency),
        ProbabilisticPolicy(baseline_rate),
    )
