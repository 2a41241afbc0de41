"""The window stage's incident step on a generated cascade: one incident, its root named.

The whole path minus Kafka: generated traces (a latency fault in ``payment``,
whose callers ``checkout`` and ``frontend`` inherit it) are encoded, decoded and
enriched, aggregated into partials (taken in by the stage as records) and into the
service graph (the desk's graph), and windows are closed by the stage itself.
"""

from __future__ import annotations

import asyncio
import json

from pipeline.alerts import validate_message
from pipeline.clock import ManualClock
from pipeline.enrich import Enricher
from pipeline.generate.anomalies import parse_anomaly
from pipeline.generate.encode import build_request, encode
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.graph.aggregate import GraphAggregator, GraphHistory
from pipeline.incidents.desk import IncidentDesk
from pipeline.incidents.records import INCIDENTS_TABLE, validate_incident
from pipeline.judge import WindowJudge
from pipeline.otlp.decode import decode_message
from pipeline.sampling.anomaly import AnomalyFlags
from pipeline.windows.assembler import WindowAssembler
from pipeline.windows.partial import PartialAggregator
from pipeline.windows.stage import Record, WindowStage
from tests.unit.windows.test_stage import DictTable, Recorder

NS = 1_000_000_000
W = 10
T0 = 1_767_225_600 * NS
FAULT = "latency_spike:service=payment,start=400,duration=50,factor=10"


def _run() -> Recorder:
    clock, recorder, history = ManualClock(T0 / NS), Recorder(), GraphHistory(keep=30)
    windows = DictTable()
    stage = WindowStage(
        assembler=WindowAssembler(W, 0, clock, idle_close_seconds=1e9, startup_hold_seconds=0,
                                  store=windows),
        judge=WindowJudge(), flags=AnomalyFlags(), store=recorder,  # type: ignore[arg-type]
        windows=windows, detectors=DictTable(), dlq=recorder, alerts=recorder,
        settled=lambda: True, incidents=IncidentDesk(W * NS, history),
    )  # fmt: skip
    spec = StreamSpec(seed=3, start_ns=T0, rate=8.0, duration_s=560.0, mean_spans=1,
                      amplitude=0.0, anomalies=(parse_anomaly(FAULT),))  # fmt: skip
    partials, graph, enricher = PartialAggregator(W, 0), GraphAggregator(W), Enricher()

    async def run() -> None:
        current, offset = None, 0
        for trace in generate_traces(spec):
            window = trace.start_ns // (W * NS)
            if current is not None and window != current:
                for p in partials.cut():
                    offset += 1
                    await stage.take_in(Record("partials", 0, offset, None, p.to_json()))
                history.add(graph.drain())
                await stage.close()
            current = window
            value = encode(build_request([(trace, trace.spans)]), "otlp_proto")
            heads = decode_message(value, None, max_bytes=1 << 24, enricher=enricher).spans
            partials.add_record(heads, offset)
            graph.add_trace(heads)

    asyncio.run(run())
    return recorder


def test_a_cascade_is_one_incident_whose_top_candidate_is_the_faulty_service() -> None:
    recorder = _run()
    messages = [json.loads(m["value"]) for m in recorder.sent]
    incidents = [m for m in messages if m.get("kind") == "incident"]
    alerts = [m for m in messages if "alert_id" in m]
    for m in incidents:
        validate_incident(m)
    for m in alerts:
        validate_message(m)
    opened = [m for m in incidents if m["status"] == "opened"]
    assert len(opened) == 1, [m["summary"] for m in incidents]
    incident = opened[0]["incident_id"]
    last = [m for m in incidents if m["incident_id"] == incident][-1]
    assert last["root_causes"][0]["service"] == "payment", last["summary"]
    assert "self time" in last["root_causes"][0]["evidence"]
    fault_alerts = [a for a in alerts if a["alert_id"] in last["alert_ids"]]
    assert len(fault_alerts) >= 2 and {a["incident_id"] for a in fault_alerts} == {incident}
    assert {"checkout", "frontend"} & set(last["services"])
    assert recorder.inserted[INCIDENTS_TABLE]
