"""The highest version per alert_id, and the alerts firing now."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.delivery.ledger import Ledger


def msg(alert_id: str, version: int, status: str = "firing") -> dict[str, Any]:
    return {"alert_id": alert_id, "version": version, "status": status}


@pytest.mark.parametrize(
    ("delivered", "candidate", "new"),
    [
        ([], msg("a", 1), True),
        ([msg("a", 1)], msg("a", 1), False),  # duplicate
        ([msg("a", 1)], msg("a", 2), True),
        ([msg("a", 3)], msg("a", 2), False),  # older, read late
        ([msg("a", 3, "resolved")], msg("a", 2), False),  # must not revive a resolved alert
        ([msg("a", 3)], msg("b", 1), True),  # ids are independent
    ],
)
def test_is_new(delivered: list[dict[str, Any]], candidate: dict[str, Any], new: bool) -> None:
    ledger = Ledger()
    for m in delivered:
        ledger.record(m)
    assert ledger.is_new(candidate) is new


@pytest.mark.parametrize(
    ("delivered", "firing"),
    [
        ([msg("a", 1), msg("b", 1)], [("a", 1), ("b", 1)]),
        ([msg("a", 1), msg("a", 2)], [("a", 2)]),  # the latest version is re-posted
        ([msg("a", 1), msg("a", 2, "resolved")], []),
        ([msg("a", 2, "resolved"), msg("a", 1)], []),  # an older firing one is ignored
        ([msg("a", 1), msg("b", 1), msg("a", 2)], [("b", 1), ("a", 2)]),
    ],
)
def test_firing(delivered: list[dict[str, Any]], firing: list[tuple[str, int]]) -> None:
    ledger = Ledger()
    for m in delivered:
        ledger.record(m)
    assert [(m["alert_id"], m["version"]) for m in ledger.firing()] == firing


def test_memory_is_bounded_by_capacity() -> None:
    ledger = Ledger(capacity=3)
    for i in range(10):
        ledger.record(msg(f"id{i}", 1))
    assert len(ledger) == 3 and len(ledger.firing()) == 3
    assert [m["alert_id"] for m in ledger.firing()] == ["id7", "id8", "id9"]
