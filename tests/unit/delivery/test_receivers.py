"""Receivers from settings, and one POST against a local HTTP server (loopback only)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pipeline.delivery.receivers import Receiver, post, receivers_from, request_body
from pipeline.local.process import free_port
from pipeline.settings import load_settings
from tests.harness.webhook import WebhookReceiver
from tests.unit.delivery.messages import alert


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        (
            {"SPANSTREAM_ALERTMANAGER_URL": "http://am:9093"},
            [("alertmanager", "http://am:9093/api/v2/alerts", None)],
        ),
        (
            {
                "SPANSTREAM_ALERTMANAGER_URL": "https://am.example/prefix/",
                "SPANSTREAM_ALERTMANAGER_USERNAME": "ops",
                "SPANSTREAM_ALERTMANAGER_PASSWORD": "pw:1",
                "SPANSTREAM_WEBHOOK_URL": "http://hook/in",
                "SPANSTREAM_WEBHOOK_BEARER_TOKEN": "tk",
            },
            [
                (
                    "alertmanager",
                    "https://am.example/prefix/api/v2/alerts",
                    "Basic " + base64.b64encode(b"ops:pw:1").decode(),
                ),
                ("webhook", "http://hook/in", "Bearer tk"),
            ],
        ),
    ],
)
def test_receivers_from_settings(
    env: dict[str, str], expected: list[tuple[str, str, str | None]]
) -> None:
    found = receivers_from(load_settings(env))
    assert [(r.name, r.url, dict(r.headers).get("Authorization")) for r in found] == expected
    assert all("pw" not in repr(r) and "tk" not in repr(r) for r in found)


def test_the_webhook_gets_the_record_as_is_and_alertmanager_an_array() -> None:
    settings = load_settings({})
    raw = json.dumps(alert()).encode()
    now = datetime(2026, 12, 4, 10, tzinfo=UTC)
    assert request_body(Receiver("webhook", "http://h"), alert(), raw, now, settings) == raw
    [posted] = json.loads(
        request_body(Receiver("alertmanager", "http://a"), alert(), raw, now, settings)
    )
    assert posted["labels"]["alert_id"] == alert()["alert_id"]


@pytest.mark.parametrize("status", [200, 202, 307, 400, 422, 429, 500, 503])
def test_post_reports_the_status_and_sends_the_headers(hook: WebhookReceiver, status: int) -> None:
    hook.status["/in"] = status
    receiver = Receiver("webhook", f"{hook.url}/in", (("Authorization", "Bearer x"),))
    answer = post(receiver, b'{"a": 1}', timeout=5)
    assert answer.status == status
    assert (answer.detail == "") == (status < 300)
    assert hook.posts("/in")[0].body == {"a": 1}


def test_post_without_a_server_is_no_answer_not_an_exception() -> None:
    answer = post(Receiver("webhook", f"http://127.0.0.1:{free_port()}/"), b"{}", timeout=2)
    assert answer.status is None and "refused" in answer.detail.lower()


def test_post_to_a_bad_url_is_no_answer_not_an_exception() -> None:
    answer = post(Receiver("webhook", "http://[::1"), b"{}", timeout=2)
    assert answer.status is None and answer.detail
