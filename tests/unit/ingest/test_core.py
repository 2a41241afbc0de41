"""IngestCore: decoding, sampling and cuts of window partials, revokes, recovery and replays."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from pipeline.clock import ManualClock
from pipeline.enrich import EnrichConfig, Enricher
from pipeline.graph.aggregate import GraphAggregator
from pipeline.ingest.core import DeadLetter, IngestCore
from pipeline.ingest.progress import Progress
from pipeline.otlp.decode import Decoded
from pipeline.otlp.heads import to_span
from pipeline.sampling.buffer import Cause
from tests.unit.ingest.records import CUT_INTERVAL, WAIT, Ingest, make_core, record, tid


def take(core: IngestCore, partition: int, offset: int, value: bytes) -> Decoded:
    result, traces = core.on_record(partition, offset, None, value, [])
    assert isinstance(result, Decoded) and traces == 1
    return result


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def core(clock: ManualClock) -> IngestCore:
    core = make_core(clock)
    core.assign(0, Progress())
    return core


def test_a_record_that_does_not_decode_is_a_dead_letter_waiting_for_one_thing(
    core: IngestCore,
) -> None:
    letter, traces = core.on_record(0, 0, b"k", b"\xff not otlp", [("h", b"v")])
    assert isinstance(letter, DeadLetter) and traces == 1
    assert (letter.key, letter.value, letter.headers) == (b"k", b"\xff not otlp", [("h", b"v")])
    assert (letter.partition, letter.offset, letter.reason) == (0, 0, "bad_proto")


def test_a_record_waits_for_each_trace_it_holds(core: IngestCore) -> None:
    _, traces = core.on_record(0, 0, None, record(tid(0), tid(1)), [])
    assert traces == 2
    _, traces = core.on_record(0, 1, None, record(tid(1)), [])
    assert traces == 1


def test_revoke_forgets_the_partition(core: IngestCore, clock: ManualClock) -> None:
    core.assign(1, Progress())
    take(core, 0, 0, record(tid(0)))
    take(core, 1, 0, record(tid(1)))
    core.revoke(0)
    assert core.partitions == [1]
    assert all(cut.partition == 1 for cut in core.due_cuts(force=True))
    with pytest.raises(KeyError):
        core.on_record(0, 1, None, record(tid(2)), [])


def test_traces_of_revoked_partitions_are_orphaned_not_written(
    core: IngestCore, clock: ManualClock
) -> None:
    core.assign(1, Progress())
    take(core, 0, 0, record(tid(0)))  # only partition 0
    take(core, 1, 0, record(tid(1)))  # only partition 1
    take(core, 0, 1, record(tid(2)))
    take(core, 1, 1, record(tid(2)))  # trace 2 spans both partitions
    core.revoke(0)
    clock.advance(WAIT)
    assert sorted(t.trace_id for t in core.decided()) == [tid(1), tid(2)]
    assert core.orphaned_traces == 1


@pytest.mark.parametrize("replay_past_intent", [False, True])
def test_recovered_intent_is_cut_again_at_exactly_that_offset(
    clock: ManualClock, replay_past_intent: bool
) -> None:
    values = [record(tid(i), error=i % 2 == 0, ms=5 + i) for i in range(5)]
    first = Ingest(clock)
    first.assign(0)
    for offset in range(3):
        first.take(0, offset, values[offset])
    clock.advance(CUT_INTERVAL)
    (sent,) = first.core.due_cuts()
    first.commits.announce([sent])  # committed, then the worker dies before delivery
    committed = first.consumer.stored[0]
    assert Progress.parse(committed.metadata).intent == 2

    second = Ingest(ManualClock())
    second.consumer.stored[0] = committed
    second.assign(0)
    last = 4 if replay_past_intent else 2
    for offset in range(last + 1):
        second.take(0, offset, values[offset])
    cuts = second.core.due_cuts()
    again = cuts[0]
    assert (again.offset, again.announced) == (2, True)
    assert [p.to_json() for p in again.partials] == [p.to_json() for p in sent.partials]
    assert len(cuts) == 1  # offsets 3 and 4 wait for the next cut interval
    second.commits.announce(cuts)  # already announced: nothing to commit
    second.commits.delivered([again])
    assert second.commits.marks(0) == Progress(delivered=2, intent=None, write_mark=-1)


def test_partials_delivered_before_a_crash_are_not_aggregated_again(clock: ManualClock) -> None:
    core = make_core(clock)
    core.assign(0, Progress(delivered=1))
    for offset in range(3):
        take(core, 0, offset, record(tid(offset)))
    (cut,) = core.due_cuts(force=True)
    assert (cut.partials[0].first_offset, cut.partials[0].last_offset) == (2, 2)
    assert sum(p.requests for p in cut.partials) == 1


def test_without_marks_each_record_of_the_replay_zone_is_cut_on_its_own(
    clock: ManualClock,
) -> None:
    core = make_core(clock)
    core.assign(0, Progress(), recut_through=1)  # reset, no metadata
    for offset in range(4):
        take(core, 0, offset, record(tid(offset)))
    cuts = core.due_cuts(force=True)
    assert [c.offset for c in cuts] == [0, 1, 3]  # one per replayed record, then as usual
    assert [sum(p.requests for p in c.partials) for c in cuts] == [1, 1, 2]


def test_a_replay_zone_cut_never_goes_behind_partials_already_delivered(
    clock: ManualClock,
) -> None:
    core = make_core(clock)
    core.assign(0, Progress(delivered=1), recut_through=3)
    for offset in range(4):
        take(core, 0, offset, record(tid(offset)))  # offsets 0 and 1 were delivered
    assert [c.offset for c in core.due_cuts(force=True)] == [2, 3]


def _overflowed(kind: str) -> float:
    value = REGISTRY.get_sample_value("spanstream_overflow_spans_total", {"kind": kind})
    return value or 0.0


def test_a_flood_of_service_names_is_aggregated_under_overflow(clock: ManualClock) -> None:
    """1,000 one-off service names among two real ones: partials stay bounded and counted."""
    core = make_core(clock, enricher=Enricher(EnrichConfig(max_services=2)))
    core.assign(0, Progress())
    before = _overflowed("service")
    take(core, 0, 0, record(tid(0), service="cart"))
    take(core, 0, 1, record(tid(1), service="checkout"))
    for n in range(1000):
        take(core, 0, 2 + n, record(tid(2 + n), service=f"flood-{n:04x}\x1b[2K"))
    core.on_record(0, 1002, None, record(tid(5000), tid(5001), service="cart"), [])
    (cut,) = core.due_cuts(force=True)
    by_service = {p.service: p.requests for p in cut.partials}
    assert by_service == {"cart": 3, "checkout": 1, "__overflow__": 1000}
    assert _overflowed("service") - before == 1000
    assert REGISTRY.get_sample_value("spanstream_services_admitted") == 2
    clock.advance(WAIT + 1)
    stored = {to_span(h).service_name for t in core.decided() for h in t.heads}
    assert len(stored) == 1002  # the rows keep their real names


def test_each_decided_trace_goes_into_the_graph_once_late_and_orphaned_ones_not(
    core: IngestCore, clock: ManualClock
) -> None:
    core.graph = GraphAggregator(window_seconds=60)
    core.assign(1, Progress())
    take(core, 0, 0, record(tid(0)))
    take(core, 1, 0, record(tid(1)))
    core.revoke(1)  # trace 1 is orphaned: its next owner derives it
    clock.advance(WAIT)
    assert [t.trace_id for t in core.decided()] == [tid(0)]
    _, traces = core.on_record(0, 1, None, record(tid(0)), [])  # a late fragment of trace 0
    assert traces == 1 and [t.cause for t in core.decided()] == [Cause.LATE]
    assert (core.graph.counts.traces, core.graph.counts.late_spans) == (1, 1)
    (window,) = core.graph.drain()
    assert sum(st.spans for st in window.self_time.values()) == 1
