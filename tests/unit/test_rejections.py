"""Rejections: every rejected record counted, each key logged once and escaped."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from pipeline.checked import StateError
from pipeline.rejections import MAX_LOGGED, Rejections, escaped


def counted(table: str) -> float:
    labels = {"table": table, "reason": "schema"}
    return REGISTRY.get_sample_value("spanstream_state_rejected_total", labels) or 0.0


def test_each_rejection_is_counted_and_each_key_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rejections = Rejections("t-once")
    key = '["shop","GET /\x1b[2J\n"]'
    for _ in range(3):
        rejections.reject(key, StateError("schema", "bad"), "starts over")
    rejections.reject("other", StateError("schema", "bad"), "starts over")
    assert counted("t-once") == 4
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all(line.isprintable() for line in lines)
    assert "\\x1b[2J\\n" in lines[0]


def test_logged_keys_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    rejections = Rejections("t-bound")
    for i in range(MAX_LOGGED + 5):
        rejections.reject(f"k{i}", StateError("schema", "bad"), "starts over")
    assert len(caplog.records) == MAX_LOGGED
    assert counted("t-bound") == MAX_LOGGED + 5


def test_a_long_key_is_cut() -> None:
    assert len(escaped("x" * 10_000)) == 203
