"""IngestCore: when a record may be committed, dead letters, revokes, recovery and replays."""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from prometheus_client import REGISTRY

from pipeline.clock import ManualClock
from pipeline.enrich import EnrichConfig, Enricher
from pipeline.ingest.core import Cut, DeadLetter, IngestCore
from pipeline.ingest.progress import Progress
from pipeline.otlp.decode import Decoded
from pipeline.otlp.heads import to_span
from pipeline.sampling import Cause, DecidedTrace, Decision
from tests.unit.ingest.records import CUT_INTERVAL, WAIT, make_core, record, tid


def position(core: IngestCore, partition: int = 0) -> int:
    return core.commit_positions()[partition][0]


def take(core: IngestCore, partition: int, offset: int, value: bytes) -> Decoded:
    result = core.on_record(partition, offset, None, value, [])
    assert isinstance(result, Decoded)
    return result


def decide_and_write(core: IngestCore) -> list[DecidedTrace]:
    """What the loop does with decided traces: mark writes, (insert), resolve."""
    decided = core.decided()
    refs = [ref for trace in decided for ref in trace.refs]
    core.mark_writes(refs)
    core.resolve(refs)
    return decided


def deliver(core: IngestCore, force: bool = False) -> list[Cut]:
    """What the loop does with due cuts: announce, (produce, flush), mark delivered."""
    cuts = core.due_cuts(force)
    for cut in cuts:
        core.announce(cut)
        core.delivered(cut)
    return cuts


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def core(clock: ManualClock) -> IngestCore:
    core = make_core(clock)
    core.assign(0, Progress(), 0)
    return core


@pytest.mark.parametrize("write_first", [True, False])
def test_commit_needs_both_the_write_and_the_delivered_partials(
    core: IngestCore, clock: ManualClock, write_first: bool
) -> None:
    take(core, 0, 0, record(tid(0)))
    clock.advance(WAIT)
    steps = [lambda: decide_and_write(core), lambda: deliver(core)]
    first, second = steps if write_first else steps[::-1]
    first()
    assert position(core) == 0
    second()
    assert position(core) == 1


def test_commit_waits_for_every_trace_of_a_record(core: IngestCore, clock: ManualClock) -> None:
    take(core, 0, 0, record(tid(0), tid(1)))
    clock.advance(3.0)
    take(core, 0, 1, record(tid(1)))  # trace 1 grows: its decision moves to t=8
    clock.advance(WAIT - 3.0)
    assert [t.trace_id for t in decide_and_write(core)] == [tid(0)]
    deliver(core, force=True)
    assert core.progress(0).delivered == 1
    assert position(core) == 0  # record 0 still holds trace 1
    clock.advance(3.0)
    (late,) = decide_and_write(core)
    assert late.trace_id == tid(1) and late.refs == {(0, 0), (0, 1)}
    assert position(core) == 2


def test_commit_never_goes_below_the_assigned_position(clock: ManualClock) -> None:
    core = make_core(clock)
    core.assign(0, Progress(delivered=41, write_mark=41), 42)
    assert position(core) == 42
    take(core, 0, 42, record(tid(0)))
    assert position(core) == 42


def test_a_dead_letter_holds_the_commit_until_the_dlq_has_it(
    core: IngestCore, clock: ManualClock
) -> None:
    letter = core.on_record(0, 0, b"k", b"\xff not otlp", [("h", b"v")])
    assert isinstance(letter, DeadLetter)
    assert (letter.key, letter.value, letter.headers) == (b"k", b"\xff not otlp", [("h", b"v")])
    take(core, 0, 1, record(tid(0)))
    clock.advance(WAIT)
    decide_and_write(core)
    deliver(core)
    assert position(core) == 0
    core.dead_lettered(letter)
    assert position(core) == 2


def test_revoke_forgets_the_partition(core: IngestCore, clock: ManualClock) -> None:
    core.assign(1, Progress(), 0)
    take(core, 0, 0, record(tid(0)))
    take(core, 1, 0, record(tid(1)))
    core.revoke(0)
    assert core.partitions == [1]
    assert set(core.commit_positions()) == {1}
    with pytest.raises(KeyError):
        core.progress(0)
    assert all(cut.partition == 1 for cut in core.due_cuts(force=True))
    core.resolve([(0, 0)])  # a write landing after the revoke is ignored
    assert core.tracker.unknown_resolutions == 1


def test_traces_of_revoked_partitions_are_orphaned_not_written(
    core: IngestCore, clock: ManualClock
) -> None:
    core.assign(1, Progress(), 0)
    take(core, 0, 0, record(tid(0)))  # only partition 0
    take(core, 1, 0, record(tid(1)))  # only partition 1
    take(core, 0, 1, record(tid(2)))
    take(core, 1, 1, record(tid(2)))  # trace 2 spans both partitions
    core.revoke(0)
    clock.advance(WAIT)
    assert sorted(t.trace_id for t in core.decided()) == [tid(1), tid(2)]
    assert core.orphaned_traces == 1


def test_reassigned_partition_starts_from_its_new_marks(core: IngestCore) -> None:
    take(core, 0, 0, record(tid(0)))
    core.revoke(0)
    core.assign(0, Progress(delivered=9, write_mark=9), 10)
    assert position(core) == 10
    assert core.progress(0) == Progress(delivered=9, write_mark=9)
    take(core, 0, 10, record(tid(0)))  # after re-assignment, offsets restart at the new position


@pytest.mark.parametrize("replay_past_intent", [False, True])
def test_recovered_intent_is_cut_again_at_exactly_that_offset(
    clock: ManualClock, replay_past_intent: bool
) -> None:
    values = [record(tid(i), error=i % 2 == 0, ms=5 + i) for i in range(5)]
    first = make_core(clock)
    first.assign(0, Progress(), 0)
    for offset in range(3):
        take(first, 0, offset, values[offset])
    clock.advance(CUT_INTERVAL)
    (sent,) = first.due_cuts()
    marks = first.announce(sent)  # committed, then the worker dies before delivery
    assert marks.intent == 2

    second = make_core(ManualClock())
    second.assign(0, Progress.parse(marks.render()), 0)
    last = 4 if replay_past_intent else 2
    for offset in range(last + 1):
        take(second, 0, offset, values[offset])
    cuts = second.due_cuts()
    again = cuts[0]
    assert (again.offset, again.announced) == (2, True)
    assert [p.to_json() for p in again.partials] == [p.to_json() for p in sent.partials]
    assert len(cuts) == 1  # offsets 3 and 4 wait for the next cut interval
    second.delivered(again)
    assert second.progress(0) == Progress(delivered=2, intent=None, write_mark=-1)


def test_partials_delivered_before_a_crash_are_not_aggregated_again(clock: ManualClock) -> None:
    core = make_core(clock)
    core.assign(0, Progress(delivered=1), 0)
    for offset in range(3):
        take(core, 0, offset, record(tid(offset)))
    (cut,) = core.due_cuts(force=True)
    assert (cut.partials[0].first_offset, cut.partials[0].last_offset) == (2, 2)
    assert sum(p.requests for p in cut.partials) == 1


def kept(*refs: tuple[int, int]) -> DecidedTrace:
    frozen: frozenset[Hashable] = frozenset(refs)
    return DecidedTrace(tid(0), Decision.KEEP, "errors", (), frozen, Cause.TIMER)


@pytest.mark.parametrize(
    ("refs", "in_zone"),
    [
        ([(0, 3)], True),
        ([(0, 5)], True),  # the write mark itself may have landed
        ([(0, 6)], False),
        ([(0, 6), (0, 4)], True),  # one earlier record is enough
        ([(1, 0)], False),  # partition 1 was assigned without a write mark
        ([(2, 0)], False),  # not ours
    ],
)
def test_replay_zone_is_the_write_mark_recovered_at_assignment(
    clock: ManualClock, refs: list[tuple[int, int]], in_zone: bool
) -> None:
    core = make_core(clock)
    core.assign(0, Progress(delivered=2, write_mark=5), 3)
    core.assign(1, Progress(), 0)
    core.mark_writes([(0, 9), (1, 9)])  # live write marks do not widen the zone
    assert core.in_replay_zone(kept(*refs)) is in_zone


def test_mark_writes_reports_only_partitions_whose_mark_moved(core: IngestCore) -> None:
    core.assign(1, Progress(write_mark=7), 8)
    moved = core.mark_writes([(0, 3), (0, 1), (1, 5), (2, 9)])
    assert moved == {0: Progress(write_mark=3)}
    assert core.progress(1).write_mark == 7
    assert core.mark_writes([(0, 2)]) == {}


def test_a_handover_names_what_is_decided_ahead_and_the_next_owner_only_aggregates_it(
    clock: ManualClock,
) -> None:
    old = make_core(clock)
    old.assign(0, Progress(), 0)
    take(old, 0, 0, record(tid(0)))
    take(old, 0, 1, record(tid(1)))
    take(old, 0, 2, record(tid(2)))
    clock.advance(WAIT - 1)
    take(old, 0, 3, record(tid(0)))  # tid(0) keeps growing: it holds offset 0 back
    clock.advance(1)
    assert [t.trace_id for t in decide_and_write(old)] == [tid(1), tid(2)]
    handed_over, marks = old.commit_positions(handover=True)[0]
    assert (handed_over, marks.done) == (0, ((1, 2),))
    assert old.commit_positions()[0][1].done == ()  # plain commits carry no x mark

    new = make_core(clock)
    new.assign(0, Progress.parse(marks.render()), handed_over)
    for offset, trace in enumerate([0, 1, 2, 0]):
        take(new, 0, offset, record(tid(trace)))
    assert len(new.buffer) == 1  # only tid(0) waits for a decision...
    (cut,) = deliver(new, force=True)
    assert sum(p.requests for p in cut.partials) == 4  # ...but every span is in the windows
    clock.advance(WAIT)
    assert [t.trace_id for t in decide_and_write(new)] == [tid(0)]
    assert position(new) == 4


def test_a_second_handover_keeps_the_inherited_ranges_not_read_yet(clock: ManualClock) -> None:
    core = make_core(clock)
    core.assign(0, Progress(done=((1, 1), (3, 5))), 0)
    take(core, 0, 0, record(tid(0)))
    take(core, 0, 1, record(tid(1)))
    take(core, 0, 2, record(tid(2)))
    take(core, 0, 3, record(tid(3)))
    assert core.commit_positions(handover=True)[0][1].done == ((1, 1), (3, 3), (4, 5))


def test_without_marks_each_record_of_the_replay_zone_is_cut_on_its_own(
    clock: ManualClock,
) -> None:
    core = make_core(clock)
    core.assign(0, Progress(), 0, replay_through=3, recut_through=1)  # reset, no metadata
    for offset in range(4):
        take(core, 0, offset, record(tid(offset)))
    cuts = deliver(core, force=True)
    assert [c.offset for c in cuts] == [0, 1, 3]  # one per replayed record, then as usual
    assert [sum(p.requests for p in c.partials) for c in cuts] == [1, 1, 2]


def test_a_replay_zone_cut_never_goes_behind_partials_already_delivered(
    clock: ManualClock,
) -> None:
    core = make_core(clock)
    core.assign(0, Progress(delivered=1), 0, replay_through=3, recut_through=3)
    for offset in range(4):
        take(core, 0, offset, record(tid(offset)))  # offsets 0 and 1 were delivered
    assert [c.offset for c in deliver(core, force=True)] == [2, 3]


def _overflowed(kind: str) -> float:
    value = REGISTRY.get_sample_value("spanstream_overflow_spans_total", {"kind": kind})
    return value or 0.0


def test_a_flood_of_service_names_is_aggregated_under_overflow(clock: ManualClock) -> None:
    """1,000 one-off service names among two real ones: partials stay bounded and counted."""
    core = make_core(clock, enricher=Enricher(EnrichConfig(max_services=2)))
    core.assign(0, Progress(), 0)
    before = _overflowed("service")
    take(core, 0, 0, record(tid(0), service="cart"))
    take(core, 0, 1, record(tid(1), service="checkout"))
    for n in range(1000):
        take(core, 0, 2 + n, record(tid(2 + n), service=f"flood-{n:04x}\x1b[2K"))
    take(core, 0, 1002, record(tid(5000), tid(5001), service="cart"))
    (cut,) = deliver(core, force=True)
    by_service = {p.service: p.requests for p in cut.partials}
    assert by_service == {"cart": 3, "checkout": 1, "__overflow__": 1000}
    assert _overflowed("service") - before == 1000
    assert REGISTRY.get_sample_value("spanstream_services_admitted") == 2
    clock.advance(WAIT + 1)
    stored = {to_span(h).service_name for t in decide_and_write(core) for h in t.heads}
    assert len(stored) == 1002  # the rows keep their real names
