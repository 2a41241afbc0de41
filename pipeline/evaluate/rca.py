"""``spanstream evaluate --rca``: labelled faults through the pure stages, no Kafka.

Per seed, the fault set of :mod:`pipeline.evaluate.rca_scenarios` is generated
(``spanstream generate``'s trace factory), each trace encoded as an
``otlp_proto`` record and run through the stages the worker runs: decode and
enrich, window partials, the exactly-once assembler, the judge (default
detector), the service graph (:mod:`pipeline.graph`: edges, self time,
originating errors), then the worker's incident step
(:class:`~pipeline.incidents.desk.IncidentDesk`: grouping, root-cause ranking,
attribute over-representation). What the stages said is
recorded (:class:`Outcome`) and scored by :mod:`pipeline.evaluate.rca_report`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.alerts import Alert
from pipeline.clock import ManualClock
from pipeline.enrich import Enricher
from pipeline.evaluate.rca_scenarios import FaultSet, fault_set
from pipeline.generate.encode import build_request, encode
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.graph.aggregate import GraphAggregator, GraphHistory
from pipeline.graph.derive import SelfTime, derive
from pipeline.graph.read import graph_spans
from pipeline.incidents.attributes import KEYS, Named
from pipeline.incidents.desk import IncidentConfig, IncidentDesk
from pipeline.incidents.records import IncidentRecord
from pipeline.incidents.rootcause import Candidate, top_operations
from pipeline.incidents.signals import OpKey
from pipeline.judge import WindowJudge
from pipeline.model import SpanHead
from pipeline.otlp.decode import decode_message
from pipeline.otlp.heads import to_span
from pipeline.windows.assembler import WindowAssembler
from pipeline.windows.partial import PartialAggregator
from pipeline.windows.series import ClosedWindow

NS = 1_000_000_000
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z
#: Windows of span samples kept for the attribute analysis.
KEEP_WINDOWS = 16
#: A span is abnormal (attribute analysis) above this multiple of its operation's self time.
SLOW_FACTOR = 2.0


@dataclass(frozen=True)
class RcaConfig:
    """The evaluated stream and the stages' parameters."""

    window_s: int = 15
    rate: float = 10.0
    base_error_rate: float = 0.01
    gap_windows: int = 3
    max_hops: int = 2


@dataclass
class IncidentOutcome:
    """What one incident ended up saying."""

    incident_id: str
    opened_ns: int
    alerts: int
    ranking: list[Candidate] = field(default_factory=list)
    operations: list[OpKey] = field(default_factory=list)
    named: list[Named] = field(default_factory=list)
    records: int = 0


@dataclass
class Outcome:
    """One seed's run: the faults, every alert onset and every incident."""

    faults: FaultSet
    window_ns: int
    alert_onsets: list[tuple[str, str, int]] = field(default_factory=list)
    incidents: dict[str, IncidentOutcome] = field(default_factory=dict)
    spans: int = 0


@dataclass(slots=True)
class _Sample:
    head: SpanHead
    self_ns: int
    origin_error: bool

    def attrs(self) -> dict[str, str]:
        """The compared attributes, read from the span's bytes (as a kept span's row)."""
        span = to_span(self.head)
        merged = {**span.resource_attributes, **span.span_attributes}
        return {k: merged[k] for k in KEYS if k in merged}


class _Stages:
    """The worker's stages in a row, on one seed's traces."""

    def __init__(self, config: RcaConfig, outcome: Outcome) -> None:
        self.config, self.outcome = config, outcome
        self.window_ns = config.window_s * NS
        self.enricher = Enricher()
        self.agg = PartialAggregator(config.window_s, 0)
        self.assembler = WindowAssembler(
            config.window_s, 0, ManualClock(), startup_hold_seconds=0, idle_close_seconds=1e9
        )
        self.judge, self.detectors = WindowJudge(), dict[str, object]()
        self.graph = GraphAggregator(config.window_s)
        self.history = GraphHistory(keep=KEEP_WINDOWS + 4)
        self.desk = IncidentDesk(
            self.window_ns,
            self.history,
            IncidentConfig(config.gap_windows, config.max_hops),
            attributes=self._spans_of,
        )
        self.state: dict[str, Any] = {}  # the worker's state table, in memory
        self.samples: dict[int, list[_Sample]] = {}
        self.offset = 0

    def add(self, trace_value: bytes) -> None:
        decoded = decode_message(trace_value, None, max_bytes=1 << 24, enricher=self.enricher)
        heads = decoded.spans
        self.agg.add_record(heads, self.offset)
        self.offset += 1
        graph = derive(graph_spans(heads))
        self.graph.add_graph(graph)
        self._sample(heads, graph.self_times)
        self.outcome.spans += len(heads)

    def _sample(self, heads: list[SpanHead], own: list[SelfTime]) -> None:
        for h, st in zip(heads, own, strict=True):
            start = h.timestamp_ns - h.timestamp_ns % self.window_ns
            self.samples.setdefault(start, []).append(_Sample(h, st.self_ns, st.error_originated))

    def cut_and_close(self) -> None:
        for partial in self.agg.cut():
            self.assembler.merge(partial)
        self.history.add(self.graph.drain())
        closed = self.assembler.close_ready()
        if not closed:
            return
        for start in sorted({w.window_start_ns for w in closed}):
            self._window(start, [w for w in closed if w.window_start_ns == start])

    def _window(self, start: int, closed: list[ClosedWindow]) -> None:
        alerts = self.judge.judge(closed, self.detectors)
        self._record_alerts(alerts)
        _, records = self.desk.process(alerts, [start], self.state)
        for record in records:
            self._record(record)
        for old in [s for s in self.samples if s < start - KEEP_WINDOWS * self.window_ns]:
            del self.samples[old]

    def _record_alerts(self, alerts: list[Alert]) -> None:
        for a in alerts:
            if a.status == "firing" and a.version == 1:
                self.outcome.alert_onsets.append(
                    (a.window.service, a.window.operation, a.onset_start_ns)
                )

    def _record(self, record: IncidentRecord) -> None:
        inc = record.incident
        ops = self.desk.ops(inc, self.history.windows())
        out = self.outcome.incidents.setdefault(
            inc.incident_id, IncidentOutcome(inc.incident_id, inc.opened_ns, 0)
        )
        out.alerts = len(inc.alerts)
        out.ranking = list(record.candidates)
        out.operations = top_operations(ops, self.desk.baselines)
        out.named = list(record.attributes)
        out.records += 1

    def _spans_of(
        self, service: str, since: int, until: int
    ) -> Iterator[tuple[dict[str, str], bool]]:
        for start, samples in self.samples.items():
            if since <= start < until:
                for s in samples:
                    if s.head.service_name == service:
                        base = self.desk.baselines.get(OpKey(service, s.head.operation))
                        slow = base is not None and s.self_ns > SLOW_FACTOR * base.self_ms * 1e6
                        yield s.attrs(), s.origin_error or slow


def run_seed(seed: int, config: RcaConfig) -> Outcome:
    """Generate one seed's faults and run them through the stages."""
    faults = fault_set(seed, config.window_s)
    outcome = Outcome(faults, config.window_s * NS)
    stages = _Stages(config, outcome)
    spec = StreamSpec(
        seed=seed,
        start_ns=T0,
        rate=config.rate,
        duration_s=faults.duration_s,
        mean_spans=1,
        base_error_rate=config.base_error_rate,
        amplitude=0.0,
        anomalies=tuple(f.anomaly for f in faults.faults),
    )
    current = None
    for trace in generate_traces(spec):
        window = trace.start_ns // stages.window_ns
        if current is not None and window != current:
            stages.cut_and_close()
        current = window
        stages.add(encode(build_request([(trace, trace.spans)]), "otlp_proto"))
    return outcome
