"""The commit protocol: positions and marks per step, and a crash after each step, replayed.

The crash table kills a worker (an exception nothing catches) right after the
side effect of one numbered step of :mod:`pipeline.ingest.commit` became
durable, starts a new worker on what survives (the group's commits, the topics,
the store) and checks that every span is stored exactly once and counted
exactly once in the windows. The store keeps every row it is given (no
ClickHouse dedup window): only the protocol prevents duplicates. Reorder two
steps (insert before its write mark is committed, send partials before their
intent is) and a row of the table fails.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from pipeline.clock import ManualClock
from pipeline.ingest.commit import CommitProtocol
from pipeline.ingest.core import DeadLetter
from pipeline.ingest.loop import IngestLoop
from pipeline.ingest.progress import Progress
from pipeline.sampling import Cause, DecidedTrace, Decision
from pipeline.sinks.base import BatchingSink
from pipeline.sinks.clickhouse import TraceWriter
from pipeline.store.base import Store
from pipeline.windows.assembler import MergeResult, WindowAssembler
from pipeline.windows.hold import Hold
from pipeline.windows.partial import Partial
from tests.unit.ingest.fakes import Event, FakeConsumer, FakeProducer
from tests.unit.ingest.records import WAIT, Ingest, make_core, record, tid

INPUT, PARTIALS, DLQ = "otlp_spans", "partials", "dlq"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ingest(clock: ManualClock) -> Ingest:
    ingest = Ingest(clock)
    ingest.assign(0)
    return ingest


def kept(*refs: tuple[int, int]) -> DecidedTrace:
    frozen: frozenset[Hashable] = frozenset(refs)
    return DecidedTrace(tid(0), Decision.KEEP, "errors", (), frozen, Cause.TIMER)


# -- positions and marks ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("committed", "log_end", "position", "zone", "recut"),
    [
        (None, 5, 0, 4, -1),  # a new group: every record in the topic may be stored
        (TopicPartition(INPUT, 0, 3), 5, 3, 4, 4),  # reset by hand: no metadata at all
        (TopicPartition(INPUT, 0, 3, metadata="d=2;w=-1"), 5, 3, 4, -1),  # nothing written
        (TopicPartition(INPUT, 0, 3, metadata="d=2;i=4;w=2"), 5, 3, 2, -1),
    ],
)
def test_resume_reads_the_position_and_the_replay_zone(
    clock: ManualClock,
    committed: TopicPartition | None,
    log_end: int,
    position: int,
    zone: int,
    recut: int,
) -> None:
    ingest = Ingest(clock)
    for i in range(log_end):
        ingest.consumer.append(0, record(tid(i)))
    if committed is not None:
        ingest.consumer.stored[0] = committed
    (resume,) = ingest.commits.resume([TopicPartition(INPUT, 0)])
    assert (resume.position, resume.recut_through) == (position, recut)
    assert resume.marks == Progress.parse(committed.metadata if committed else None)
    in_zone = [ingest.commits.in_replay_zone(kept((0, o))) for o in range(log_end + 1)]
    assert in_zone == [o <= zone for o in range(log_end + 1)]


@pytest.mark.parametrize("write_first", [True, False])
def test_commit_needs_both_the_write_and_the_delivered_partials(
    ingest: Ingest, clock: ManualClock, write_first: bool
) -> None:
    ingest.take(0, 0, record(tid(0)))
    clock.advance(WAIT)
    steps = [ingest.decide_and_write, ingest.deliver]
    first, second = steps if write_first else steps[::-1]
    first()
    assert ingest.position() == 0
    second()
    assert ingest.position() == 1


def test_commit_waits_for_every_trace_of_a_record(ingest: Ingest, clock: ManualClock) -> None:
    ingest.take(0, 0, record(tid(0), tid(1)))
    clock.advance(3.0)
    ingest.take(0, 1, record(tid(1)))  # trace 1 grows: its decision moves to t=8
    clock.advance(WAIT - 3.0)
    assert [t.trace_id for t in ingest.decide_and_write()] == [tid(0)]
    ingest.deliver(force=True)
    assert ingest.commits.marks(0).delivered == 1
    assert ingest.position() == 0  # record 0 still holds trace 1
    clock.advance(3.0)
    (late,) = ingest.decide_and_write()
    assert late.trace_id == tid(1) and late.refs == {(0, 0), (0, 1)}
    assert ingest.position() == 2


def test_commit_never_goes_below_the_assigned_position(clock: ManualClock) -> None:
    ingest = Ingest(clock)
    ingest.assign(0, Progress(delivered=41, write_mark=41), 42)
    assert ingest.position() == 42
    ingest.take(0, 42, record(tid(0)))
    assert ingest.position() == 42


def test_a_dead_letter_holds_the_commit_until_the_dlq_has_it(
    ingest: Ingest, clock: ManualClock
) -> None:
    letter = ingest.take(0, 0, b"\xff not otlp")
    assert isinstance(letter, DeadLetter)
    ingest.take(0, 1, record(tid(0)))
    clock.advance(WAIT)
    ingest.decide_and_write()
    ingest.deliver()
    assert ingest.position() == 0
    ingest.commits.dead_lettered(letter)
    assert ingest.position() == 2


def test_revoke_forgets_the_partition(ingest: Ingest) -> None:
    ingest.assign(1)
    ingest.take(0, 0, record(tid(0)))
    ingest.take(0, 1, record(tid(1)))
    ingest.commits.revoke([0])
    assert set(ingest.commits.positions()) == {1}
    with pytest.raises(KeyError):
        ingest.commits.marks(0)
    ingest.commits.resolve([(0, 0)])  # a write landing after the revoke is ignored
    assert ingest.commits.tracker.unknown_resolutions == 1


def test_reassigned_partition_starts_from_its_new_marks(ingest: Ingest) -> None:
    ingest.take(0, 0, record(tid(0)))
    ingest.commits.revoke([0])
    ingest.core.revoke(0)
    ingest.assign(0, Progress(delivered=9, write_mark=9), 10)
    assert ingest.position() == 10
    assert ingest.commits.marks(0) == Progress(delivered=9, write_mark=9)
    ingest.take(0, 10, record(tid(0)))  # after re-assignment, offsets restart at the new position
    assert ingest.commits.next_offset(0) == 11


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
    ingest = Ingest(clock)
    ingest.assign(0, Progress(delivered=2, write_mark=5), 3)
    ingest.assign(1, Progress(), 0)
    ingest.commits.mark_writes([kept((0, 9), (1, 9))])  # live write marks do not widen the zone
    assert ingest.commits.in_replay_zone(kept(*refs)) is in_zone


def test_write_marks_only_rise_and_are_committed_before_the_call_returns(
    clock: ManualClock,
) -> None:
    ingest = Ingest(clock)
    ingest.assign(0)
    ingest.assign(1, Progress(write_mark=7), 8)
    ingest.commits.mark_writes([kept((0, 3), (0, 1)), kept((1, 5)), kept((2, 9))])
    assert ingest.commits.marks(0) == Progress(write_mark=3)
    assert ingest.commits.marks(1).write_mark == 7
    assert Progress.parse(ingest.consumer.stored[0].metadata).write_mark == 3
    commits = len(ingest.events)
    ingest.commits.mark_writes([kept((0, 2))])
    assert ingest.commits.marks(0).write_mark == 3
    assert len(ingest.events) == commits  # nothing moved: nothing committed


def test_a_handover_names_what_is_decided_ahead_and_the_next_owner_only_aggregates_it(
    clock: ManualClock,
) -> None:
    old = Ingest(clock)
    old.assign(0)
    old.take(0, 0, record(tid(0)))
    old.take(0, 1, record(tid(1)))
    old.take(0, 2, record(tid(2)))
    clock.advance(WAIT - 1)
    old.take(0, 3, record(tid(0)))  # tid(0) keeps growing: it holds offset 0 back
    clock.advance(1)
    assert [t.trace_id for t in old.decide_and_write()] == [tid(1), tid(2)]
    handed_over, marks = old.commits.positions(handover=True)[0]
    assert (handed_over, marks.done) == (0, ((1, 2),))
    assert old.commits.positions()[0][1].done == ()  # plain commits carry no x mark

    new = Ingest(clock)
    new.assign(0, marks, handed_over)
    for offset, trace in enumerate([0, 1, 2, 0]):
        new.take(0, offset, record(tid(trace)))
    assert len(new.core.buffer) == 1  # only tid(0) waits for a decision...
    (cut,) = new.deliver(force=True)
    assert sum(p.requests for p in cut.partials) == 4  # ...but every span is in the windows
    clock.advance(WAIT)
    assert [t.trace_id for t in new.decide_and_write()] == [tid(0)]
    assert new.position() == 4


def test_a_second_handover_keeps_the_inherited_ranges_not_read_yet(clock: ManualClock) -> None:
    ingest = Ingest(clock)
    ingest.assign(0, Progress(done=((1, 1), (3, 5))), 0)
    for offset in range(4):
        ingest.take(0, offset, record(tid(offset)))
    assert ingest.commits.positions(handover=True)[0][1].done == ((1, 1), (3, 3), (4, 5))


# -- a crash after each step --------------------------------------------------------------


class Crash(BaseException):
    """SIGKILL: the worker stops right here (no ``except`` clause of the loop catches it)."""


class Tripwire(list[Event]):
    """Every side effect in order; raises Crash right after the one ``trip`` picks."""

    trip: Callable[[Event], bool] | None = None

    def append(self, event: Event) -> None:
        super().append(event)
        if self.trip is not None and self.trip(event):
            self.trip = None
            raise Crash(event)


class MemoryStore:
    """``otel_traces`` as a list of (TraceId, SpanId): every row given is kept."""

    accepts_arrow = False

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.rows: list[tuple[str, str]] = []

    def insert(
        self, table: str, columns: Mapping[str, Sequence[Any]], dedup_token: str | None = None
    ) -> int:
        rows = list(zip(columns["TraceId"], columns["SpanId"], strict=True))
        self.rows.extend(rows)
        self.events.append(("write", tuple(rows)))
        return len(rows)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        assert sql.startswith("SELECT TraceId, SpanId FROM otel_traces") and params is not None
        return [row for row in self.rows if row[0] in set(params["ids"])]


@dataclass
class World:
    """What outlives a worker: the group's commits, the topics, the stores."""

    events: Tripwire = field(default_factory=Tripwire)

    def __post_init__(self) -> None:
        self.consumer = FakeConsumer(INPUT, self.events)
        self.producer = FakeProducer(self.events)
        self.stores = [MemoryStore(self.events)]

    def worker(self, store: MemoryStore | None = None) -> Worker:
        """A new worker process on partition 0, writing to ``store`` (the first one)."""
        self.consumer.restart()
        self.producer.restart()
        clock = ManualClock()
        core = make_core(clock)
        commits = CommitProtocol(cast(Consumer, self.consumer), INPUT)
        writer = TraceWriter(cast(Store, store or self.stores[0]), commits.in_replay_zone)
        loop = IngestLoop(
            core=core,
            commits=commits,
            consumer=cast(Consumer, self.consumer),
            producer=cast(Producer, self.producer),
            sink=BatchingSink("otel_traces", writer, lambda t: t.trace_id),
            input_topic=INPUT,
            partials_topic=PARTIALS,
            dlq_topic=DLQ,
            flush_interval=1.0,
        )
        loop.subscribe()
        self.consumer.assign(0)
        return Worker(loop, clock)

    def stored(self) -> Counter[tuple[str, str]]:
        return Counter(row for store in self.stores for row in store.rows)

    def window_counts(self) -> Counter[tuple[str, str]]:
        """Spans per series, as the window stage merges the partials topic (repeats dropped)."""
        assembler = WindowAssembler(60, 3600, ManualClock(), startup_hold_seconds=0)
        counts: Counter[tuple[str, str]] = Counter()
        for message in self.producer.delivered.get(PARTIALS, []):
            value = message.value_ or b""
            if Hold.is_hold(value):
                continue
            partial = Partial.from_json(value)
            if assembler.merge(partial) is MergeResult.MERGED:
                counts[partial.series] += partial.requests
        return counts


@dataclass
class Worker:
    loop: IngestLoop
    clock: ManualClock

    def run(self, rounds: int, advance: float, batch: int) -> None:
        for _ in range(rounds):
            self.clock.advance(advance)
            self.loop.step(batch=batch, timeout=0)


BAD = b"\x00\x01 not a request"


def span_id(i: int) -> str:
    """The span id :func:`record` gives the ``i``-th trace of a record (1-based)."""
    return f"{i:016x}"


#: Offset -> value: one trace per record, an undecodable record 3, and a trace (tid 6)
#: with a span in record 5 (its second trace there) and one in record 6.
LOG = [record(tid(i)) for i in range(8)]
LOG[3] = BAD
LOG[5] = record(tid(5), tid(6))
SPANS = {(tid(i), span_id(1)) for i in (0, 1, 2, 4, 5, 6, 7)} | {(tid(6), span_id(2))}


def nth(n: int, matches: Callable[[Event, dict[str, int]], bool]) -> Callable[[Event], bool]:
    """A trip on the ``n``-th event ``matches`` accepts (it may keep state in the dict)."""
    state = {"seen": 0}

    def trip(event: Event) -> bool:
        if matches(event, state):
            state["seen"] += 1
        return state["seen"] == n

    return trip


def _marks(event: Event) -> Progress | None:
    return Progress.parse(event[3]) if event[0] == "commit" else None


def intent_committed(event: Event, state: dict[str, int]) -> bool:
    marks = _marks(event)
    return marks is not None and marks.intent is not None


def partials_delivered(event: Event, state: dict[str, int]) -> bool:
    return event[0] == "delivered" and event[1] == PARTIALS and not Hold.is_hold(event[2])


def write_mark_committed(event: Event, state: dict[str, int]) -> bool:
    marks = _marks(event)
    if marks is None or marks.write_mark <= state.get("w", -1):
        return False
    state["w"] = marks.write_mark
    return True


def rows_inserted(event: Event, state: dict[str, int]) -> bool:
    return event[0] == "write"


def dead_letter_delivered(event: Event, state: dict[str, int]) -> bool:
    return event[0] == "delivered" and event[1] == DLQ


def position_committed(event: Event, state: dict[str, int]) -> bool:
    if event[0] != "commit" or event[2] <= state.get("position", 0):
        return False
    state["position"] = event[2]
    return True


@pytest.mark.parametrize(
    ("step", "matches", "occurrence"),
    [
        ("2 first intent committed", intent_committed, 1),
        ("2 intent committed", intent_committed, 2),
        ("3 first partials delivered", partials_delivered, 1),
        ("3 partials delivered", partials_delivered, 2),
        ("5 first write mark committed", write_mark_committed, 1),
        ("5 write mark committed", write_mark_committed, 2),
        ("6 first rows inserted", rows_inserted, 1),
        ("6 rows inserted", rows_inserted, 2),
        ("6 dead letter delivered", dead_letter_delivered, 1),
        ("7 first position committed", position_committed, 1),
        ("7 position committed", position_committed, 2),
    ],
)
def test_a_crash_after_each_step_is_repaired_by_the_replay(
    step: str, matches: Callable[[Event, dict[str, int]], bool], occurrence: int
) -> None:
    world = World()
    for value in LOG:
        world.consumer.append(0, value)
    world.events.trip = nth(occurrence, matches)
    first = world.worker()
    with pytest.raises(Crash):  # one record a round: cuts and batches stay small
        first.run(rounds=40, advance=0.5, batch=1)
    second = world.worker()  # reads everything left at once: other cut boundaries
    second.run(rounds=30, advance=0.5, batch=500)
    assert world.consumer.committed_offset(0) == len(LOG)
    stored = world.stored()
    assert set(stored) == SPANS and max(stored.values()) == 1, step
    assert sum(world.window_counts().values()) == len(SPANS), step
    letters = world.producer.delivered[DLQ]
    assert {dict(m.headers_)["spanstream.source.offset"] for m in letters} == {b"3"}


def test_after_a_clean_hand_over_the_next_owner_writes_nothing_twice_to_another_store() -> None:
    """Step 8: the next owner's store (chdb: one per worker) never saw the old owner's rows,
    so only the ``x`` mark keeps it from writing them again."""
    world = World()
    world.consumer.append(0, record(tid(0)))
    world.consumer.append(0, record(tid(1)))
    old = world.worker()
    old.run(rounds=1, advance=0.0, batch=500)
    old.run(rounds=1, advance=WAIT - 1, batch=500)
    world.consumer.append(0, record(tid(9), tid(0)))  # tid(0) grows: offset 0 undecided
    old.run(rounds=2, advance=0.5, batch=500)  # tid(1) decided and written
    assert world.stored() == {(tid(1), span_id(1)): 1}
    world.consumer.revoke(0)
    assert world.consumer.stored[0].offset == 0  # offset 0 holds the position back

    world.stores.append(MemoryStore(world.events))
    new = world.worker(store=world.stores[1])
    new.run(rounds=20, advance=0.5, batch=500)
    assert world.consumer.committed_offset(0) == 3
    expected = {(tid(0), span_id(1)), (tid(1), span_id(1)), (tid(9), span_id(1))}
    expected.add((tid(0), span_id(2)))
    stored = world.stored()
    assert set(stored) == expected and max(stored.values()) == 1
    assert sum(world.window_counts().values()) == len(expected)


def test_a_crash_while_partials_cannot_be_delivered_loses_no_span_of_the_windows() -> None:
    """Step 7 takes the lower of done and ``d``: written records whose partials never
    reached the topic are read again after a crash."""
    world = World()
    for value in LOG:
        world.consumer.append(0, value)
    world.producer.down.add(PARTIALS)
    first = world.worker()
    first.run(rounds=30, advance=0.5, batch=1)  # everything decided and written...
    assert set(world.stored()) == SPANS
    assert world.consumer.committed_offset(0) == 0  # ...but no partial delivered
    world.producer.down.clear()
    second = world.worker()  # the first one is gone: killed, as good as
    second.run(rounds=30, advance=0.5, batch=500)
    assert world.consumer.committed_offset(0) == len(LOG)
    assert sum(world.window_counts().values()) == len(SPANS)
    assert max(world.stored().values()) == 1
