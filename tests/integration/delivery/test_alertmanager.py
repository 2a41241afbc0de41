"""Alert topic -> ``spanstream alerts forward`` -> a real Alertmanager -> a webhook receiver.

Real Kafka (``kafka_bootstrap``), the Alertmanager built by infra/alertmanager/build.sh
running the documented config (infra/alertmanager/alertmanager.yml, receivers pointed
at a local :class:`~tests.harness.webhook.WebhookReceiver`), and the forwarder as a
process. Alert messages are made by the worker's own episode tracker
(:class:`pipeline.alerts.EpisodeTracker`) and produced onto the alert topic. Every
wait is on a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from pipeline.alerts import EpisodeTracker, Finding, WindowRef
from tests.harness.alertmanager import (
    EXAMPLE_CONFIG,
    LocalAlertmanager,
    LocalForwarder,
    alertmanager_binary,
    alertmanager_built,
    local_config,
)
from tests.harness.webhook import WebhookReceiver

pytestmark = pytest.mark.integration

#: Seconds for an alert to pass forwarder -> Alertmanager -> receiver (group_wait is 1 s).
DELIVERY_TIMEOUT = 60.0
#: How long Alertmanager stays down in the outage test.
OUTAGE_SECONDS = 60.0
MINUTE_NS = 60_000_000_000
LINK = "https://grafana.example/explore?traceId={trace_id}"


@pytest.fixture(autouse=True, scope="module")
def _alertmanager_built() -> None:
    if alertmanager_built():
        return
    reason = "alertmanager not built: run infra/alertmanager/build.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(f"needed under CI=true: {reason}")
    pytest.skip(reason)


@dataclass
class Rig:
    """Topics, the receiver, Alertmanager and a way to start forwarders on them."""

    bootstrap: str
    alert_topic: str
    dlq_topic: str
    receiver: WebhookReceiver
    alertmanager: LocalAlertmanager
    start_forwarder: Callable[..., LocalForwarder]

    def produce(self, *messages: dict[str, Any] | bytes) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all"})
        for m in messages:
            value = m if isinstance(m, bytes) else json.dumps(m).encode()
            key = b"junk" if isinstance(m, bytes) else m["service"].encode()
            producer.produce(self.alert_topic, key=key, value=value)
        assert producer.flush(15) == 0


@pytest.fixture
def rig(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> Iterator[Rig]:
    alert_topic = kafka_topic_factory("alerts", partitions=3)
    dlq_topic = kafka_topic_factory("alerts-dlq")
    forwarders: list[LocalForwarder] = []
    with WebhookReceiver() as receiver:
        config = local_config(EXAMPLE_CONFIG, receiver.url, tmp_path / "alertmanager.yml")
        with LocalAlertmanager(config, tmp_path / "am") as alertmanager:

            def start_forwarder(**env: str) -> LocalForwarder:
                forwarder = LocalForwarder(
                    tmp_path,
                    {
                        "SPANSTREAM_KAFKA": kafka_bootstrap,
                        "SPANSTREAM_ALERT_TOPIC": alert_topic,
                        "SPANSTREAM_DELIVERY_DLQ_TOPIC": dlq_topic,
                        "SPANSTREAM_DELIVERY_GROUP": f"forward-{uuid.uuid4().hex[:8]}",
                        "SPANSTREAM_ALERTMANAGER_URL": alertmanager.url,
                        "SPANSTREAM_TRACE_LINK_TEMPLATE": LINK,
                        "SPANSTREAM_DELIVERY_RETRY_MAX_SECONDS": "2",
                        "SPANSTREAM_ALERTMANAGER_RESEND_SECONDS": "5",
                        **env,
                    },
                )
                forwarders.append(forwarder.start())
                return forwarder

            yield Rig(
                kafka_bootstrap, alert_topic, dlq_topic, receiver, alertmanager, start_forwarder
            )
            for forwarder in forwarders:
                assert forwarder.stop() == 0, forwarder.log_tail()  # SIGTERM: a clean stop
                assert "stopped" in forwarder.log_text()


def episode(
    service: str, operation: str, severity: str = "critical"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The firing and the resolved message of one anomaly episode, as a worker makes them."""
    tracker = EpisodeTracker(resolve_after=1)
    start = (time.time_ns() // MINUTE_NS - 3) * MINUTE_NS
    trace = uuid.uuid4().hex
    window = WindowRef(service, operation, start, start + MINUTE_NS, (trace,))
    finding = Finding(0.97, severity, (("p99_ms", 900.0, 110.0),), "robust")
    firing = tracker.observe(window, finding)
    quiet = WindowRef(service, operation, start + MINUTE_NS, start + 2 * MINUTE_NS)
    resolved = tracker.observe(quiet, None)
    assert firing is not None and resolved is not None
    now = time.time_ns()
    return firing.to_message(now), resolved.to_message(now)


def received(rig: Rig, status: str, path: str | None = None) -> dict[str, dict[str, str]]:
    """Labels of each alert_id the receiver got with ``status`` (on ``path``)."""
    return {
        labels["alert_id"]: labels
        for where, got, labels in rig.receiver.alerts(path)
        if got == status and "alert_id" in labels
    }


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.2)


def test_an_anomaly_fires_then_resolves_through_alertmanager(rig: Rig) -> None:
    firing, resolved = episode("checkout", "POST /cart")
    forwarder = rig.start_forwarder()
    rig.produce(firing)
    rig.receiver.wait_for(
        lambda _: firing["alert_id"] in received(rig, "firing", "/pager"), DELIVERY_TIMEOUT
    )
    labels = received(rig, "firing")[firing["alert_id"]]
    assert labels == {
        "alertname": "SpanstreamAnomaly",
        "service": "checkout",
        "operation": "POST /cart",
        "severity": "critical",
        "alert_id": firing["alert_id"],
    }
    [notification] = [p.body for p in rig.receiver.posts("/pager")]
    annotations = notification["alerts"][0]["annotations"]
    trace = firing["exemplar_trace_ids"][0]
    assert annotations["trace_url"] == LINK.replace("{trace_id}", trace)
    assert annotations["observed"] == "p99_ms 900 vs expected 110"

    rig.produce(resolved)
    rig.receiver.wait_for(
        lambda _: firing["alert_id"] in received(rig, "resolved", "/pager"), DELIVERY_TIMEOUT
    )
    assert forwarder.metric("spanstream_delivery_sent_total") == 2


def test_the_documented_routes_page_critical_and_inhibit_warnings_of_that_service(
    rig: Rig,
) -> None:
    critical, _ = episode("checkout", "POST /cart", "critical")
    inhibited, _ = episode("checkout", "GET /cart", "warning")
    ticket, _ = episode("search", "GET /q", "warning")
    rig.start_forwarder()
    rig.produce(critical, inhibited, ticket)

    def status_of(alert_id: str) -> dict[str, Any]:
        held = {a["labels"]["alert_id"]: a["status"] for a in rig.alertmanager.alerts()}
        return held.get(alert_id, {})

    wait_until(
        lambda: bool(status_of(inhibited["alert_id"]).get("inhibitedBy")),
        DELIVERY_TIMEOUT,
        "the warning of checkout inhibited by its critical alert",
    )
    rig.receiver.wait_for(
        lambda _: (
            ticket["alert_id"] in received(rig, "firing", "/tickets")
            and critical["alert_id"] in received(rig, "firing", "/pager")
        ),
        DELIVERY_TIMEOUT,
    )
    notified = {a for _, _, labels in rig.receiver.alerts() for a in [labels.get("alert_id")]}
    assert inhibited["alert_id"] not in notified


def test_alertmanager_down_for_a_minute_loses_no_alert(rig: Rig) -> None:
    """Alerts produced while Alertmanager is down all arrive once it is back, even though
    the forwarder itself is restarted (SIGTERM while it retries) during the outage."""
    before, _ = episode("cart", "GET /", "critical")
    forwarder = rig.start_forwarder()
    rig.produce(before)
    rig.receiver.wait_for(lambda _: before["alert_id"] in received(rig, "firing"), DELIVERY_TIMEOUT)

    rig.alertmanager.stop()
    down_since = time.monotonic()
    during = [episode(f"svc-{i % 3}", f"op-{i}", "critical")[0] for i in range(12)]
    rig.produce(*during)

    def outage(seconds: float) -> None:
        """Hold the outage: the forwarder keeps retrying, delivers nothing, drops nothing."""
        sent = forwarder.metric("spanstream_delivery_sent_total")
        wait_until(
            lambda: (
                time.monotonic() - down_since >= seconds
                and forwarder.metric("spanstream_delivery_retries_total") >= 3
            ),
            seconds + 30,
            f"{seconds:.0f} s of outage with the forwarder retrying",
        )
        assert forwarder.metric("spanstream_delivery_sent_total") == sent
        assert forwarder.metric("spanstream_delivery_blocked_seconds") > 0
        assert forwarder.metric("spanstream_delivery_dead_letters_total") == 0

    outage(OUTAGE_SECONDS / 3)
    assert forwarder.stop() == 0  # SIGTERM while it holds an alert: left uncommitted
    forwarder = rig.start_forwarder(
        SPANSTREAM_DELIVERY_GROUP=forwarder.env["SPANSTREAM_DELIVERY_GROUP"]
    )
    outage(OUTAGE_SECONDS)

    rig.alertmanager.start()
    wanted = {m["alert_id"] for m in during}
    rig.receiver.wait_for(lambda _: wanted <= set(received(rig, "firing")), DELIVERY_TIMEOUT)
    # Each delivered once by the new forwarder; the pre-outage one was committed before.
    assert forwarder.metric("spanstream_delivery_sent_total") == len(during)
    # Alertmanager keeps alerts in memory only: the alert from before the outage is back
    # because the (new) forwarder rebuilt what still fires from the topic and re-posts it.
    wait_until(
        lambda: before["alert_id"] in {a["labels"]["alert_id"] for a in rig.alertmanager.alerts()},
        DELIVERY_TIMEOUT,
        "the pre-outage alert re-posted",
    )


def test_bad_records_and_refused_alerts_go_to_the_dead_letter_topic_counted(rig: Rig) -> None:
    refused, _ = episode("pay", "POST /charge")
    after, _ = episode("pay", "POST /refund")
    rig.receiver.status["/reject"] = 422
    forwarder = rig.start_forwarder(SPANSTREAM_WEBHOOK_URL=f"{rig.receiver.url}/reject")
    rig.produce(b"\x00not json", {**refused, "status": "maybe"}, refused)
    letters = read_topic(rig.bootstrap, rig.dlq_topic, 3)
    reasons = sorted(h["spanstream.error.reason"] for h in letters)
    assert reasons == ["not_alert", "not_json", "rejected"]
    [rejected] = [h for h in letters if h["spanstream.error.reason"] == "rejected"]
    assert rejected["spanstream.delivery.receiver"] == "webhook"
    assert rejected["spanstream.delivery.status"] == "422"
    assert forwarder.metric("spanstream_delivery_dead_letters_total") == 3
    # Nothing stalls behind them, and Alertmanager (which took it) still got the refused one.
    rig.receiver.status.pop("/reject")
    rig.produce(after)
    rig.receiver.wait_for(
        lambda _: {refused["alert_id"], after["alert_id"]} <= set(received(rig, "firing")),
        DELIVERY_TIMEOUT,
    )


def read_topic(bootstrap: str, topic: str, count: int) -> list[dict[str, str]]:
    """The headers of the first ``count`` records of ``topic`` (within the deadline)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    found: list[dict[str, str]] = []
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    try:
        while len(found) < count and time.monotonic() < deadline:
            record = consumer.poll(0.5)
            if record is not None and record.error() is None:
                found.append({k: (v or b"").decode() for k, v in record.headers() or []})
    finally:
        consumer.close()
    assert len(found) == count, found
    return found


def test_amtool_accepts_the_documented_config() -> None:
    amtool = alertmanager_binary().with_name("amtool")
    done = subprocess.run(
        [str(amtool), "check-config", str(EXAMPLE_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
