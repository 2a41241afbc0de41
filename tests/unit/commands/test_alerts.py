"""``spanstream alerts tail``: what it does with records that are not alerts.

The alert topic is writable by anyone who can write a topic: a record that is
not an alert is skipped (the tail used to stop on the first one), and text
from spans reaches the terminal escaped.
"""

from __future__ import annotations

import json
import pickle

import pytest

from pipeline.alerts import EpisodeTracker, Finding, WindowRef
from pipeline.commands.alerts import format_alert, read_alert


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


def test_span_text_reaches_the_terminal_escaped() -> None:
    message = alert_message(service="shop\x1b]0;owned\x07\x1b[2J")
    line = format_alert(message)
    assert line.isprintable() and "\x1b" not in line
    assert "shop\\x1b]0;owned\\x07\\x1b[2J" in line
