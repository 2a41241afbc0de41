"""``spanstream alerts tail``: data-derived names never reach the terminal raw."""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import types
from typing import Any

import pytest

from pipeline.alerts import EpisodeTracker, Finding, WindowRef
from pipeline.commands import alerts
from pipeline.commands.alerts import read_alert

# A service name that, printed raw, erases the line and forges a reassuring one,
# retitles the terminal and reverses what follows.
FORGED = "cart\x1b[2K\r2026-01-01 CRITICAL resolved all good\x1b]0;pwned\x07\u202eevil\x9b"


class _Record:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value

    def error(self) -> None:
        return None


class _Consumer:
    """The slice of confluent_kafka.Consumer that run_tail uses: one alert, then none."""

    def __init__(self, config: dict[str, Any]) -> None:
        # A schema-valid alert whose service name came from a hostile span.
        message = alert_message(service=FORGED)
        self._records = [_Record(json.dumps(message).encode())]

    def list_topics(self, timeout: float) -> Any:
        return types.SimpleNamespace(topics={"spanstream-alerts": None})

    def subscribe(self, topics: list[str]) -> None:
        pass

    def poll(self, timeout: float) -> _Record | None:
        return self._records.pop(0) if self._records else None

    def close(self) -> None:
        pass


def test_tail_escapes_control_characters_of_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = types.ModuleType("confluent_kafka")
    fake.Consumer = _Consumer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "confluent_kafka", fake)
    args = argparse.Namespace(
        bootstrap="127.0.0.1:1", json=False, from_beginning=True, max=1, timeout=0
    )
    assert alerts.run_tail(args) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one alert, one line
    line = out.rstrip("\n")
    assert all(ch.isprintable() for ch in line), repr(line)
    assert "cart\\u001b[2K\\u000d2026-01-01 CRITICAL" in line
    assert "\\u202eevil\\u009b GET /" in line


# Records that are not alerts: the topic is writable by others.
def alert_message(service: str = "shop") -> dict[str, object]:
    window = WindowRef(service, "GET /", 0, 60_000_000_000, ("ab" * 16,))
    finding = Finding(0.9, "critical", (("p99_ms", 900.0, 100.0),), "robust")
    alert = EpisodeTracker().observe(window, finding)
    assert alert is not None
    return alert.to_message()


def test_an_alert_is_read() -> None:
    message = alert_message()
    assert read_alert(json.dumps(message).encode()) == message


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"\x80\x04garbage",
        pickle.dumps({"status": "firing"}),
        b"[1, 2]",
        b'{"status": "firing"}',
        json.dumps({**alert_message(), "score": 7}).encode(),
        b"[" * 100_000,
    ],
)
def test_a_record_that_is_not_an_alert_is_skipped_not_raised(value: bytes | None) -> None:
    assert read_alert(value) is None


def test_forward_without_a_receiver_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    for name in ("SPANSTREAM_ALERTMANAGER_URL", "SPANSTREAM_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["alerts", "forward"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SPANSTREAM_ALERTMANAGER_URL" in err


def test_forward_refuses_a_url_with_credentials_without_echoing_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeline.cli import main

    assert main(["alerts", "forward", "--alertmanager-url", "http://ops:hunter2@am:9093"]) == 2
    err = capsys.readouterr().err
    assert "no credentials in the URL" in err and err.count("\n") == 1
    assert "hunter2" not in err


def test_forward_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    with pytest.raises(SystemExit):
        main(["alerts", "forward", "--help"])
    out = capsys.readouterr().out
    for option in ("--alertmanager-url", "--webhook-url", "--metrics-port", "--from-beginning"):
        assert option in out


def _incident_message() -> dict[str, Any]:
    from pipeline.incidents.grouping import Incident
    from pipeline.incidents.records import IncidentRecord

    incident = Incident("ab" * 8, 0, 0, 1, {"cd" * 8: True}, {"shop": 0})
    return IncidentRecord(incident, "opened", 60_000_000_000, (), ()).to_message()


def test_an_incident_record_is_read_and_printed_on_one_line() -> None:
    from pipeline.commands.alerts import format_incident

    message = _incident_message()
    assert read_alert(json.dumps(message).encode()) == message
    assert format_incident(message).startswith("1970-01-01T00:01:00.000Z INCIDENT opened")
    broken = {**message, "root_causes": "everything"}
    assert read_alert(json.dumps(broken).encode()) is None
