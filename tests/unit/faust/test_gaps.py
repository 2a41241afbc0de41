"""``settle_range`` against the commit bookkeeping of Faust's own Kafka consumer (no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from pipeline.faust.gaps import StallWatch, settle_range

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


def held(consumer: Any) -> None:
    """Committed 1; 1-2 merged before a rebalance dropped their acks; 3-4 acked after it."""
    consumer._committed_offset[TP0] = 1
    for offset in (3, 4):
        consumer.ack(message(offset))


def test_a_held_commit_is_released_once_seen_twice_on_merged_offsets(consumer: Any) -> None:
    held(consumer)
    watch = StallWatch(TOPIC)
    assert consumer._filter_committable_offsets([TP0]) == {}  # Faust's head rule

    first = asyncio.run(watch.settle(consumer, lambda p: 5))
    second = asyncio.run(watch.settle(consumer, lambda p: 5))

    assert (first, second) == ([], [(TP0, range(1, 3))])
    assert consumer._filter_committable_offsets([TP0]) == {TP0: 5}


@pytest.mark.parametrize("merged_below", [None, 2], ids=["untracked", "not-merged"])
def test_a_held_commit_on_offsets_not_known_merged_stays_held(
    consumer: Any, merged_below: int | None
) -> None:
    held(consumer)
    watch = StallWatch(TOPIC)

    for _ in range(3):
        assert asyncio.run(watch.settle(consumer, lambda p: merged_below)) == []
    assert consumer._filter_committable_offsets([TP0]) == {}


def test_repeats_in_fausts_acked_list_are_dropped_so_the_commit_moves_in_one_step(
    consumer: Any,
) -> None:
    consumer._committed_offset[TP0] = 1
    consumer._acked[TP0].extend([1, 2, 2, 3, 3, 4])  # a gap's offsets, then acked again
    watch = StallWatch(TOPIC)

    asyncio.run(watch.settle(consumer, lambda p: 5))

    assert consumer._filter_committable_offsets([TP0]) == {TP0: 5}
