"""A record of the alert topic: an alert, or the reason it is none (never an exception)."""

from __future__ import annotations

import json

import pytest

from pipeline.delivery.records import Rejected, Skipped, parse_alert
from tests.unit.delivery.messages import alert, incident


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (None, "not_json", ""),
        (b"", "not_json", ""),
        (b"\xff\xfe", "not_json", ""),
        (b"{", "not_json", ""),
        (b"[" * 100_000, "not_json", ""),
        (b"[]", "not_alert", "a JSON object expected, got list"),
        (b"42", "not_alert", "a JSON object expected, got int"),
        (b"{}", "not_alert", "'schema_version' is a required property"),
        (json.dumps(alert(version=0)).encode(), "not_alert", "version"),
        (json.dumps(alert(status="maybe")).encode(), "not_alert", "status"),
        (json.dumps(alert(alert_id="../x")).encode(), "not_alert", "alert_id"),
        (json.dumps(alert(window_start="soon")).encode(), "not_alert", "window_start"),
        (json.dumps(alert(created_at=5)).encode(), "not_alert", "created_at"),
        (json.dumps(alert(created_at="2026-12-04T09:00:00")).encode(), "not_alert", "created_at"),
        (
            json.dumps(alert(window_end="9999-12-31T23:59:59-10:00")).encode(),
            "not_alert",
            "window_end",
        ),
        (
            json.dumps(alert(onset_window_start="0001-01-01T00:00:00+01:00")).encode(),
            "not_alert",
            "onset_window_start",
        ),
        (json.dumps(alert(extra=1)).encode(), "not_alert", "extra"),
    ],
)
def test_rejected(value: bytes | None, reason: str, detail: str) -> None:
    found = parse_alert(value)
    assert isinstance(found, Rejected)
    assert found.reason == reason and detail in found.detail


def test_an_alert_is_returned_as_is() -> None:
    message = alert()
    assert parse_alert(json.dumps(message).encode()) == message


def test_an_incident_record_is_skipped_not_dead_lettered() -> None:
    assert parse_alert(json.dumps(incident()).encode()) == Skipped("incident")


def test_a_broken_incident_record_is_no_alert() -> None:
    broken = {**incident(), "incident_id": "../x"}
    rejected = parse_alert(json.dumps(broken).encode())
    assert isinstance(rejected, Rejected) and rejected.reason == "not_alert"
    assert "incident record" in rejected.detail
