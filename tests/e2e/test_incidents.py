"""End to end: a generated cascade -> Kafka -> a worker -> one incident.

A latency fault in ``payment`` (its callers ``checkout`` and ``frontend`` inherit the
added time) must give exactly one incident record stream on the alert topic, every
alert of the incident must carry its id, and the incident's latest record must name
``payment`` as its top root-cause candidate. The stream is read as a backlog, so this
also checks that ranking waits for the service graph (``pipeline/incidents/desk.py``).
When the stream ends, every series' windows turn empty (a traffic drop everywhere):
that is one more incident, after the stream, and left out here.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from pipeline.alerts import validate_message
from pipeline.incidents.records import validate_incident
from tests.e2e.test_worker import PROCESS_TIMEOUT, Stack, stack, wait_processed
from tests.harness.streams import consume

pytestmark = pytest.mark.e2e
__all__ = ["stack"]  # the fixture, shared with test_worker.py


def test_a_cascade_is_one_incident_and_its_alerts_carry_its_id(
    stack: Stack,
) -> None:
    with stack.worker("w1") as worker:
        # 48 windows of 10 s: 33 to warm up, then 8 of payment 8x slower, then 7 normal.
        manifest = stack.generate(
            "--rate", "15", "--duration", "480", "--spans-per-trace", "4", "--seed", "12",
            "--anomaly", "latency_spike:service=payment,start=330,duration=80,factor=8",
        )  # fmt: skip
        wait_processed([worker], manifest.summary["spans"], PROCESS_TIMEOUT)

        def docs_of(messages: list[Any]) -> list[dict[str, Any]]:
            return [json.loads(m.value()) for m in messages]

        def resolved(messages: list[Any]) -> bool:
            return any(
                d.get("kind") == "incident" and d["status"] == "resolved" for d in docs_of(messages)
            )

        topic = stack.env["SPANSTREAM_ALERT_TOPIC"]
        messages = consume(stack.bootstrap, topic, resolved, timeout=PROCESS_TIMEOUT)
        docs = docs_of(messages)
        incidents = [d for d in docs if d.get("kind") == "incident"]
        alerts = [d for d in docs if d.get("kind") != "incident"]
        for doc in incidents:
            validate_incident(doc)
        for doc in alerts:
            validate_message(doc)
        last_span_ns = max(s.start_ns for s in manifest.spans())

        def during_stream(doc: dict[str, Any]) -> bool:
            opened_at = datetime.fromisoformat(doc["opened_at"].replace("Z", "+00:00"))
            return opened_at.timestamp() * 1e9 < last_span_ns - 10e9

        summaries = [(d["opened_at"], d["status"], d["summary"]) for d in incidents]
        print(*summaries, sep="\n")
        opened = {
            d["incident_id"] for d in incidents if d["status"] == "opened" and during_stream(d)
        }
        assert len(opened) == 1, summaries
        (incident,) = opened
        last = max(
            (d for d in incidents if d["incident_id"] == incident), key=lambda d: d["version"]
        )
        members = [a for a in alerts if a["alert_id"] in last["alert_ids"]]
        assert len(members) >= 2 and all(a["incident_id"] == incident for a in members)
        assert last["root_causes"], last["summary"]
        assert last["root_causes"][0]["service"] == "payment", last["summary"]
        for msg in messages:
            doc = json.loads(msg.value())
            if doc.get("kind") == "incident":
                assert msg.key() == doc["incident_id"].encode()
        rows = worker.query(
            "SELECT IncidentId, argMax(Status, Version) FROM spanstream_incidents GROUP BY 1"
        )
        assert (incident, "resolved") in [(str(i), str(s)) for i, s in rows]
        print(last["summary"])
