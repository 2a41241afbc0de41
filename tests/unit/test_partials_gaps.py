"""``settle_range`` against the commit bookkeeping of Faust's own Kafka consumer (no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from pipeline.partials_gaps import settle_range

TOPIC = "partials"
TP0 = TP(TOPIC, 0)


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    app = faust.App("gaps-test", broker="kafka://127.0.0.1:1", store="memory://")
    consumer = app.consumer
    monkeypatch.setattr(consumer, "assignment", lambda: {TP0})
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda name: name == TOPIC)
    yield consumer


def message(offset: int, generation: int = 0) -> ConsumerMessage:
    return ConsumerMessage(TOPIC, 0, offset, 0.0, 0, None, None, b"", b"", generation_id=generation)


def settle(consumer: Any, in_hand: ConsumerMessage, offsets: range, generation: int = 0) -> bool:
    return asyncio.run(settle_range(consumer, in_hand, offsets, generation))


def test_the_range_and_the_record_in_hand_commit_together(consumer: Any) -> None:
    consumer._committed_offset[TP0] = 1
    in_hand = message(69)

    assert settle(consumer, in_hand, range(1, 69))
    assert consumer._filter_committable_offsets([TP0]) == {}  # the record in hand is not acked
    consumer.ack(in_hand)

    assert consumer._filter_committable_offsets([TP0]) == {TP0: 70}


def test_a_gap_faust_recorded_itself_is_not_counted_twice(consumer: Any) -> None:
    consumer._committed_offset[TP0] = 5
    asyncio.run(consumer._add_gap(TP0, 6, 9))  # Faust's fetch loop, read offset 5, then 9
    in_hand = message(9)

    assert settle(consumer, in_hand, range(5, 9))
    consumer.ack(in_hand)

    assert consumer._filter_committable_offsets([TP0]) == {TP0: 10}  # in one commit


@pytest.mark.parametrize(
    ("generation", "assigned"), [(1, {TP0}), (0, set())], ids=["rebalanced", "revoked"]
)
def test_nothing_is_recorded_for_a_partition_faust_sought_back_or_gave_away(
    consumer: Any, monkeypatch: pytest.MonkeyPatch, generation: int, assigned: set[TP]
) -> None:
    monkeypatch.setattr(consumer, "assignment", lambda: assigned)

    assert not settle(consumer, message(69), range(1, 69), generation)
    assert not consumer._gap[TP0]
