"""End to end: injected anomaly -> worker -> ``alerts forward`` -> Alertmanager -> webhook.

``spanstream generate`` sends a stream with a latency spike on ``payment`` (simulated
time, 10 s windows, as tests/e2e/test_worker.py); the worker scores the windows and
publishes the alert; the forwarder posts it to a real Alertmanager running the
documented config, which notifies a local webhook receiver. The stream is sent in two
parts, the second (normal traffic) only once the firing notification arrived: an
alert that fires and resolves within Alertmanager's group_wait is never notified.

Needs a Kafka broker and infra/alertmanager/build.sh.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.local.worker import LocalWorker, delete_topics, prepare_topics, unique_names
from tests.harness.alertmanager import (
    EXAMPLE_CONFIG,
    LocalAlertmanager,
    LocalForwarder,
    alertmanager_built,
    local_config,
)
from tests.harness.streams import run_generate
from tests.harness.webhook import WebhookReceiver

pytestmark = pytest.mark.e2e

WINDOW_SECONDS = 10
#: 33 warm-up windows, then the spike (8 windows) in part 1; 7 normal windows in part 2.
PART_1_SECONDS, PART_2_SECONDS = 410, 70
SPIKE = "latency_spike:service=payment,start=330,duration=80,factor=5"
#: Seconds for the worker to process a part and the alert to reach the receiver.
TIMEOUT = 240.0


@pytest.fixture
def env(kafka_bootstrap: str) -> Iterator[dict[str, str]]:
    if not alertmanager_built():
        reason = "alertmanager not built: run infra/alertmanager/build.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(f"needed under CI=true: {reason}")
        pytest.skip(reason)
    names = {
        **unique_names("deliver"),
        "SPANSTREAM_KAFKA": kafka_bootstrap,
        "SPANSTREAM_WINDOW_SECONDS": str(WINDOW_SECONDS),
        "SPANSTREAM_ALLOWED_LATENESS_SECONDS": "5",
        "SPANSTREAM_DECISION_WAIT_SECONDS": "2",
    }
    prepare_topics(kafka_bootstrap, names)
    yield names
    delete_topics(kafka_bootstrap, names)


def generate(
    bootstrap: str, env: dict[str, str], start: int, seconds: int, seed: int, *args: str
) -> None:
    """``seconds`` of simulated traffic from ``start`` (a new seed: new trace ids)."""
    fixed = ["--start-time", str(start), "--diurnal-amplitude", "0", "--seed", str(seed)]
    timing = ["--rate", "15", "--duration", str(seconds), "--spans-per-trace", "4"]
    run_generate(bootstrap, env["SPANSTREAM_INPUT_TOPIC"], [*fixed, *timing, *args])


def payment_alerts(receiver: WebhookReceiver, status: str) -> set[str]:
    return {
        labels["alert_id"]
        for _, got, labels in receiver.alerts()
        if got == status and labels.get("service") == "payment"
    }


def test_an_injected_anomaly_fires_and_resolves_at_the_webhook(
    kafka_bootstrap: str, env: dict[str, str], tmp_path: Path
) -> None:
    start = int(time.time()) // 60 * 60 - 1800  # simulated time, windows aligned
    with (
        WebhookReceiver() as receiver,
        LocalAlertmanager(
            local_config(EXAMPLE_CONFIG, receiver.url, tmp_path / "am.yml"), tmp_path / "am"
        ) as alertmanager,
        LocalWorker(
            tmp_path / "worker",
            bootstrap=kafka_bootstrap,
            store_url=f"chdb:{tmp_path / 'worker' / 'chdb'}",
            env=env,
        ),
        LocalForwarder(
            tmp_path, {**env, "SPANSTREAM_ALERTMANAGER_URL": alertmanager.url}
        ) as forwarder,
    ):
        generate(kafka_bootstrap, env, start, PART_1_SECONDS, 11, "--anomaly", SPIKE)
        receiver.wait_for(lambda _: bool(payment_alerts(receiver, "firing")), TIMEOUT)
        fired = payment_alerts(receiver, "firing")

        generate(kafka_bootstrap, env, start + PART_1_SECONDS, PART_2_SECONDS, 12)
        receiver.wait_for(lambda _: fired <= payment_alerts(receiver, "resolved"), TIMEOUT)
        assert forwarder.metric("spanstream_delivery_dead_letters_total") == 0
        assert forwarder.metric("spanstream_delivery_sent_total") >= 2
