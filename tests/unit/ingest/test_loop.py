"""IngestLoop with in-process Kafka doubles: side-effect order, backpressure, DLQ retries."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from prometheus_client import REGISTRY

from pipeline.clock import ManualClock
from pipeline.errors import SinkUnavailable
from pipeline.graph.aggregate import GraphAggregator
from pipeline.graph.shell import GraphFlusher
from pipeline.ingest.backpressure import HOLD_INTERVAL
from pipeline.ingest.commit import CommitProtocol
from pipeline.ingest.core import IngestCore
from pipeline.ingest.loop import IngestLoop
from pipeline.ingest.progress import Progress
from pipeline.sampling.buffer import DecidedTrace
from pipeline.sinks.base import BatchingSink
from pipeline.sinks.clickhouse import table_writer
from pipeline.store.base import Store
from pipeline.windows.hold import Hold
from pipeline.windows.partial import Partial
from tests.unit.ingest.fakes import Event, FakeConsumer, FakeProducer
from tests.unit.ingest.records import CUT_INTERVAL, WAIT, make_core, record, tid

INPUT, PARTIALS, DLQ = "otlp_spans", "partials", "dlq"


@dataclass
class Writer:
    """The otel_traces insert: records what it writes, or fails while ``down``."""

    events: list[Event]
    down: bool = False
    attempts: int = 0
    rows: list[str] = field(default_factory=list)
    #: traces whose rows the store cannot hold (a timestamp past Int64, say)
    poison: set[str] = field(default_factory=set)
    tokens: list[str] = field(default_factory=list)

    def __call__(self, traces: Sequence[DecidedTrace], token: str) -> None:
        self.attempts += 1
        self.tokens.append(token)
        if self.down:
            raise SinkUnavailable("clickhouse down")
        if self.poison & {t.trace_id for t in traces}:
            # The real insert path: the column conversion overflows, as chdb's did.
            table_writer(cast(Store, _Overflowing()), "otel_traces", lambda rows: {})(traces, token)
        ids = sorted(t.trace_id for t in traces)
        self.rows.extend(ids)
        self.events.append(("write", tuple(ids)))


class _Overflowing:
    def insert(self, table: str, columns: object, dedup_token: str | None = None) -> int:
        raise OverflowError("int too big to convert")


@dataclass
class Rig:
    loop: IngestLoop
    core: IngestCore
    clock: ManualClock
    consumer: FakeConsumer
    producer: FakeProducer
    writer: Writer
    events: list[Event]

    def step(self, advance: float = 0.0, batch: int = 500) -> int:
        self.clock.advance(advance)
        return self.loop.step(batch=batch, timeout=0)

    def commits(self, partition: int = 0) -> list[int]:
        return [e[2] for e in self.events if e[0] == "commit" and e[1] == partition]

    def index(self, predicate: object) -> int:
        """Position of the first event matching ``predicate`` (a callable on the event)."""
        assert callable(predicate)
        return next(i for i, e in enumerate(self.events) if predicate(e))


@pytest.fixture
def rig() -> Rig:
    clock = ManualClock()
    events: list[Event] = []
    core = make_core(clock)
    writer = Writer(events)
    sink = BatchingSink("otel_traces", writer, lambda t: t.trace_id)
    consumer, producer = FakeConsumer(INPUT, events), FakeProducer(events)
    loop = IngestLoop(
        core=core,
        commits=CommitProtocol(cast(Consumer, consumer), INPUT),
        consumer=cast(Consumer, consumer),
        producer=cast(Producer, producer),
        sink=sink,
        input_topic=INPUT,
        partials_topic=PARTIALS,
        dlq_topic=DLQ,
        flush_interval=1.0,
    )
    loop.subscribe()
    consumer.assign(0)
    return Rig(loop, core, clock, consumer, producer, writer, events)


def test_a_record_is_decided_then_written_then_committed(rig: Rig) -> None:
    rig.consumer.append(0, record(tid(0)))
    assert rig.step() == 1
    rig.step(WAIT - 0.1)
    assert rig.writer.rows == []
    assert set(rig.commits()) == {0}  # nothing is safe before the decision
    rig.step(0.1)
    assert rig.writer.rows == [tid(0)]
    assert rig.commits()[-1] == 1
    intent = rig.index(lambda e: e[0] == "commit" and "i=0" in (e[3] or ""))
    partial = rig.index(lambda e: e[0] == "delivered" and e[1] == PARTIALS)
    write_mark = rig.index(lambda e: e[0] == "commit" and "w=0" in (e[3] or ""))
    write = rig.index(lambda e: e[0] == "write")
    done = rig.index(lambda e: e[0] == "commit" and e[2] == 1)
    assert intent < partial < done  # the intent is committed before the partials go out
    assert write_mark < write < done  # the write mark is committed before the insert
    assert rig.consumer.stored[0].metadata == "d=0;w=0"


def test_unavailable_sink_pauses_consumption_and_holds_the_commit(rig: Rig) -> None:
    rig.consumer.append(0, record(tid(0)))
    rig.step()
    rig.writer.down = True
    rig.step(WAIT)
    assert rig.writer.attempts == 1
    assert rig.consumer.paused == {0}
    rig.consumer.append(0, record(tid(1)))
    for _ in range(5):  # still within the 0.5 s backoff: no fetch, no retry storm
        assert rig.step(0.05) == 0
    assert rig.writer.attempts == 1
    assert max(rig.commits()) == 0
    rig.writer.down = False
    assert rig.step(0.5) == 1  # resumed: the record that waited is fetched
    assert rig.consumer.paused == set()
    assert rig.writer.rows == [tid(0)]
    assert max(rig.commits()) == 1


def test_traces_waiting_for_a_down_sink_count_toward_the_memory_bound(rig: Rig) -> None:
    rig.loop.gate.max_buffered_traces = 2
    rig.writer.down = True
    for i in range(2):
        rig.consumer.append(0, record(tid(i)))
        rig.step(batch=1)
        rig.step(WAIT)  # decided, its write failed: the trace now waits in the sink
    rig.consumer.append(0, record(tid(2)))
    for _ in range(20):  # backoffs expire again and again, the outage goes on
        assert rig.step(1.0) == 0  # two traces wait for their insert: no fetching
    assert rig.consumer.paused == {0}
    rig.writer.down = False
    rig.step(30.0)  # the retry after the longest backoff lands...
    assert rig.step() == 1  # ...so fetching resumes
    rig.step(WAIT)
    assert rig.writer.rows == [tid(0), tid(1), tid(2)]


def test_a_partition_revoked_during_a_backoff_comes_back_unpaused(rig: Rig) -> None:
    rig.consumer.append(0, record(tid(0)))
    rig.step()
    rig.writer.down = True
    rig.step(WAIT)
    assert rig.consumer.paused == {0}
    rig.consumer.revoke(0)
    assert rig.consumer.resumed == [[0]]  # resumed while still assigned
    rig.writer.down = False
    rig.step(1.0)
    rig.consumer.assign(0)
    assert rig.step() == 1  # replayed from the last commit, not stuck paused


def test_failed_dlq_delivery_is_retried_and_holds_the_offset(rig: Rig) -> None:
    rig.producer.down.add(DLQ)
    rig.consumer.append(0, b"\x00\x01 not a request", key=b"k")
    rig.consumer.append(0, record(tid(0)))
    rig.step()
    for _ in range(3):
        rig.step(WAIT)
    assert rig.writer.rows == [tid(0)]  # record 1 is done...
    assert rig.producer.failed >= 3  # ...the DLQ delivery was tried again and again...
    assert max(rig.commits()) == 0  # ...and offset 0 holds the commit back
    rig.producer.down.clear()
    rig.step(60.0)  # retries back off (up to a minute apart)
    rig.step()
    (letter,) = rig.producer.delivered[DLQ]
    assert (letter.key_, letter.value_) == (b"k", b"\x00\x01 not a request")
    headers = dict(letter.headers_)
    assert headers["spanstream.source.offset"] == b"0"
    assert headers["spanstream.error.reason"] == b"bad_proto"
    rig.step()
    assert max(rig.commits()) == 2


def test_undelivered_partials_are_resent_unchanged_before_a_new_cut(rig: Rig) -> None:
    rig.producer.down.add(PARTIALS)
    rig.consumer.append(0, record(tid(0)))
    rig.step()
    rig.step(WAIT)
    rig.consumer.append(0, record(tid(1)))
    rig.step(2.0)  # a new cut is due, but the first one is not delivered yet
    assert max(rig.commits()) == 0
    rig.producer.down.clear()
    rig.step()
    assert [p.last_offset for p in delivered_partials(rig)] == [0]
    assert rig.loop.commits.marks(0).delivered == 0
    rig.step(1.0)
    assert [p.last_offset for p in delivered_partials(rig)] == [0, 1]
    assert rig.loop.commits.marks(0).delivered == 1


def delivered_partials(rig: Rig) -> list[Partial]:
    return [Partial.from_json(e[2]) for e in rig.events if e[0] == "delivered" and e[1] == PARTIALS]


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_lag_and_buffered_traces_are_exported(rig: Rig) -> None:
    for i in range(3):
        rig.consumer.append(0, record(tid(i)))
    rig.step(batch=1)
    assert gauge("spanstream_consumer_lag_messages", partition="0") == 2
    assert gauge("spanstream_buffered_traces") == 1
    rig.step(batch=5)
    assert gauge("spanstream_consumer_lag_messages", partition="0") == 2  # refreshed every 5 s
    rig.step(5.0)
    assert gauge("spanstream_consumer_lag_messages", partition="0") == 0
    rig.consumer.revoke(0)
    assert gauge("spanstream_consumer_lag_messages", partition="0") is None


def test_volume_is_logged_per_service_every_interval(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.ingest.loop")
    rig.consumer.append(0, record(tid(0), tid(1), service="volume-test"))
    rig.consumer.append(0, record(tid(2), error=False, service="volume-test"))
    rig.step()
    rig.step(WAIT)
    assert not [r for r in caplog.records if "volume" in r.message]
    rig.step(30.0)
    (line,) = [r.getMessage() for r in caplog.records if "volume in" in r.getMessage()]
    assert "volume-test spans 3->2 (66.7%)" in line
    assert gauge("spanstream_sampling_keep_ratio", service="volume-test") == pytest.approx(2 / 3)


def test_a_failed_commit_is_retried_and_guards_what_must_follow_it(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_commit = rig.consumer.commit
    failing = [True]

    def flaky_commit(offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        if failing[0]:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        real_commit(offsets, asynchronous)

    monkeypatch.setattr(rig.consumer, "commit", flaky_commit)
    failing[0] = False
    rig.consumer.append(0, record(tid(0)))
    rig.step()
    rig.step(CUT_INTERVAL)  # the first cut is announced and delivered
    assert len(rig.producer.delivered[PARTIALS]) == 1
    failing[0] = True
    with pytest.raises(KafkaException):
        rig.step(WAIT)  # decided, but its write mark cannot be committed...
    assert rig.writer.rows == []  # ...so nothing is inserted
    rig.consumer.append(0, record(tid(1)))
    with pytest.raises(KafkaException):
        rig.step(CUT_INTERVAL)  # the next cut's intent cannot be committed...
    assert len(rig.producer.delivered[PARTIALS]) == 1  # ...so its partials are not sent
    failing[0] = False
    rig.step()
    assert rig.writer.rows == [tid(0)]
    assert len(rig.producer.delivered[PARTIALS]) == 2
    rig.step(WAIT)
    assert max(rig.commits()) == 2


def test_a_full_producer_queue_waits_for_room_instead_of_raising(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_produce = rig.producer.produce
    refusals: list[str] = []

    def full_once(topic: str, **kwargs: object) -> None:
        if len(refusals) < 2:
            refusals.append(topic)
            raise BufferError("Local: Queue full")
        real_produce(topic, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rig.producer, "produce", full_once)
    rig.consumer.append(0, record(tid(0)))
    rig.step()
    rig.step(WAIT)
    assert refusals == [PARTIALS, PARTIALS]
    assert len(rig.producer.delivered[PARTIALS]) >= 1
    assert max(rig.commits()) == 1


def test_revoke_leaves_unwritten_traces_to_the_next_owner(rig: Rig) -> None:
    rig.consumer.append(0, record(tid(0)))
    rig.step()
    rig.writer.down = True
    rig.step(WAIT)  # decided and sealed, the write failed
    rig.consumer.append(0, record(tid(1)))
    rig.writer.down = False
    rig.step(0.5)  # the sealed batch lands; tid(1) arrives and waits for its decision
    rig.writer.down = True
    rig.step(WAIT)  # tid(1) is decided, its batch is sealed, and the write fails
    rig.consumer.revoke(0)
    assert rig.loop.sink.pending_rows == 1  # the sealed batch keeps its rows for the retry


def test_sink_discard_keeps_the_sealed_batch() -> None:
    written: list[list[str]] = []

    def writer(rows: Sequence[str], token: str) -> None:
        if not written:
            written.append([])
            raise SinkUnavailable("down")
        written.append(list(rows))

    sink: BatchingSink[str] = BatchingSink("t", writer, lambda r: r)
    sink.extend(["a1", "b1"])
    with pytest.raises(SinkUnavailable):
        sink.flush()  # seals a1, b1
    sink.extend(["a2", "b2"])
    assert sink.discard(lambda r: r.startswith("a")) == 1  # only the open a2
    sink.flush()
    sink.flush()
    assert written[1:] == [["a1", "b1"], ["b2"]]


def test_a_full_trace_buffer_pauses_fetching_until_traces_are_decided(rig: Rig) -> None:
    rig.loop.gate.max_buffered_traces = 2
    for i in range(4):
        rig.consumer.append(0, record(tid(i)))
    assert rig.step(batch=1) == 1
    assert rig.step(batch=1) == 1
    assert rig.step(batch=1) == 0  # two traces wait for their decision: no fetching
    assert rig.consumer.paused == {0}
    rig.step(WAIT)  # both decided and written...
    assert rig.step(batch=1) == 1  # ...so fetching resumes
    assert rig.consumer.paused == set()


def test_without_marks_every_record_already_in_the_topic_is_checked_before_writing(
    rig: Rig,
) -> None:
    from types import SimpleNamespace

    def in_zone(offset: int) -> bool:
        return rig.loop.commits.in_replay_zone(
            cast(DecidedTrace, SimpleNamespace(refs={(0, offset)}))
        )

    rig.consumer.revoke(0)
    for i in range(3):
        rig.consumer.append(0, record(tid(i)))
    rig.consumer.assign(0)  # no commit, no marks: as after a reset that dropped the metadata
    assert [in_zone(o) for o in (0, 2, 3)] == [True, True, False]
    rig.step()
    rig.step(WAIT)  # decided, written (write mark 2) and committed with marks
    rig.consumer.revoke(0)
    rig.consumer.append(0, record(tid(3)))
    rig.consumer.assign(0)  # marks present: the zone is the write mark, not the log end
    assert [in_zone(o) for o in (2, 3)] == [True, False]


def test_a_revoke_whose_final_commit_fails_still_releases_the_partition(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.consumer.append(0, record(tid(0)))
    rig.consumer.append(0, record(tid(1)))
    rig.step()

    def gone(offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        raise KafkaException(KafkaError(KafkaError.UNKNOWN_MEMBER_ID))

    with monkeypatch.context() as m:
        m.setattr(rig.consumer, "commit", gone)
        with pytest.raises(KafkaException):  # run() retries it; the broker forgot us
            rig.step(WAIT)
        rig.consumer.revoke(0)  # the rebalance callback must not raise
    assert rig.core.partitions == []
    rig.consumer.assign(0)  # back at the last commit: records 0 and 1 again
    assert rig.step() == 2  # replayed, tracked afresh: no "tracked after" error


def test_a_clean_revoke_commits_what_is_decided_ahead_of_the_position(rig: Rig) -> None:
    rig.consumer.append(0, record(tid(0)))
    rig.consumer.append(0, record(tid(1)))
    rig.step()
    rig.step(WAIT - 1)
    rig.consumer.append(0, record(tid(0)))  # tid(0) grows: offset 0 stays undecided
    rig.step()
    rig.step(1.0)  # tid(1) decided and written
    assert rig.writer.rows == [tid(1)]
    rig.consumer.revoke(0)
    committed = rig.consumer.stored[0]
    assert (committed.offset, committed.metadata.split(";")[-1]) == (0, "x=1")


@pytest.mark.parametrize(
    ("committed", "cuts"),
    [
        # what `kafka-consumer-groups --reset-offsets --to-earliest` commits: no metadata
        (TopicPartition(INPUT, 0, 0), [0, 1, 2]),
        (None, [2]),  # a new group: nothing merged before, one cut as usual
        # marks without a write yet (killed before its first insert): cut as usual
        (TopicPartition(INPUT, 0, 0, metadata="d=0;w=-1"), [2]),
    ],
)
def test_records_before_an_offset_reset_without_marks_are_cut_one_by_one(
    rig: Rig, committed: TopicPartition | None, cuts: list[int]
) -> None:
    rig.consumer.revoke(0)
    rig.consumer.stored.clear()
    for i in range(3):
        rig.consumer.append(0, record(tid(i)))
    if committed is not None:
        rig.consumer.stored[0] = committed
    rig.consumer.assign(0)
    rig.step(CUT_INTERVAL)
    assert sorted({p.last_offset for p in delivered_partials(rig)}) == cuts


def holds(rig: Rig) -> list[tuple[int, int]]:
    """(source partition, partials partition) of every Hold marker delivered."""
    out = []
    for message in rig.producer.delivered.get(PARTIALS, []):
        if Hold.is_hold(message.value_ or b""):
            out.append((Hold.from_json(message.value_ or b"").source_partition, message.partition_))
    return out


def test_while_fetching_is_paused_holds_reach_every_window_partition(rig: Rig) -> None:
    rig.loop.gate.partials_partitions = 3
    rig.consumer.append(0, record(tid(0)))
    rig.step()
    assert holds(rig) == []  # flowing: partials say enough
    rig.writer.down = True
    rig.step(WAIT)  # the write fails: fetching pauses, a round of markers is queued
    rig.step(0.1)
    assert holds(rig) == [(0, 0), (0, 1), (0, 2)]
    rig.step(1.0)
    assert len(holds(rig)) == 3  # at most one round per HOLD_INTERVAL
    rig.step(HOLD_INTERVAL)
    rig.step(0.1)
    assert len(holds(rig)) == 6
    rig.writer.down = False
    rig.step(30.0)  # the write lands: fetching resumes
    rig.step(0.1)
    resumed = len(holds(rig))
    rig.step(HOLD_INTERVAL)
    rig.step(HOLD_INTERVAL)
    assert len(holds(rig)) == resumed  # flowing again: no more markers


def _letters(rig: Rig) -> list[dict[str, bytes]]:
    return [dict(m.headers_) for m in rig.producer.delivered.get(DLQ, [])]


def test_a_trace_the_store_cannot_hold_is_dead_lettered_and_the_rest_written(rig: Rig) -> None:
    """Issue #12: one row the store refuses stalled every insert, retried forever."""
    rig.writer.poison.add(tid(3))
    for i in range(6):
        rig.consumer.append(0, record(tid(i)))
    rig.step()
    for _ in range(12):  # bisection: a few rounds, no backoff in between
        rig.step(WAIT)
    assert sorted(rig.writer.rows) == [tid(i) for i in range(6) if i != 3]
    (letter,) = rig.producer.delivered[DLQ]
    headers = dict(letter.headers_)
    assert headers["spanstream.error.reason"] == b"store_rejected"
    assert b"OverflowError" in headers["spanstream.error.detail"]
    assert (letter.key_, headers["spanstream.source.offset"]) == (tid(3).encode(), b"3")
    assert json.loads(letter.value_ or b"")["rows"][0]["TraceId"] == tid(3)
    assert max(rig.commits()) == 6  # the poison trace's record commits once dead-lettered


def test_bisection_tokens_depend_only_on_the_rows() -> None:
    """A replay that rebuilds the same batch sends the same tokens, so ClickHouse dedups."""

    def run() -> list[str]:
        clock = ManualClock()
        events: list[Event] = []
        core = make_core(clock)
        writer = Writer(events, poison={tid(5)})
        sink = BatchingSink("otel_traces", writer, lambda t: t.trace_id, on_rejected=_keep)
        core.assign(0, Progress())
        for i in range(8):
            core.on_record(0, i, None, record(tid(i)), [])
        clock.advance(WAIT)
        for trace in core.decided():
            sink.add(trace)
        while sink.pending_rows:
            sink.flush()
        return writer.tokens

    first = run()
    assert len(first) > 2 and first == run()


def _keep(rows: object, exc: object) -> None:
    return None


def test_an_oversize_dead_letter_is_cut_and_the_rest_of_the_fetch_goes_on(rig: Rig) -> None:
    """Issue #12: a 10 MB record made the DLQ send raise MSG_SIZE_TOO_LARGE; the records
    fetched after it were never ingested and the partition's commit froze."""
    big = b"\x0a" + b"x" * 10_000_000
    rig.consumer.append(0, big, key=b"big")
    for i in range(5):
        rig.consumer.append(0, record(tid(i)))
    rig.step()  # one fetch: the big record first, then five valid ones
    rig.step(WAIT)
    rig.step()
    assert sorted(rig.writer.rows) == [tid(i) for i in range(5)]
    (letter,) = rig.producer.delivered[DLQ]
    headers = dict(letter.headers_)
    assert headers["spanstream.error.reason"] == b"too_large"
    assert headers["spanstream.dlq.truncated"] == b"1"
    assert headers["spanstream.source.size"] == str(len(big)).encode()
    assert headers["spanstream.source.sha256"] == hashlib.sha256(big).hexdigest().encode()
    assert headers["spanstream.source.offset"] == b"0"
    assert letter.value_ == big[: len(letter.value_ or b"")] and len(letter.value_ or b"") < 1e6
    assert max(rig.commits()) == 6


def test_a_dead_letter_the_dlq_topic_refuses_as_too_large_goes_as_a_reference(rig: Rig) -> None:
    rig.producer.topic_max_bytes[DLQ] = 10  # a DLQ topic with a tiny max.message.bytes
    bad = b"\x00\x01 not a request"
    rig.consumer.append(0, bad)
    rig.consumer.append(0, record(tid(0)))
    rig.step()
    rig.step(WAIT)
    rig.step(WAIT)
    rig.step()
    (letter,) = rig.producer.delivered[DLQ]
    headers = dict(letter.headers_)
    assert letter.value_ is None and headers["spanstream.source.size"] == str(len(bad)).encode()
    assert headers["spanstream.error.reason"] == b"bad_proto"
    assert max(rig.commits()) == 2


def test_a_dlq_that_keeps_failing_backs_off_and_turns_loud(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing DLQ topic must not spin nor freeze silently: bounded retries per minute,
    errors in the log and a gauge; the commit holds at the record (nothing lost)."""
    rig.producer.down.add(DLQ)
    rig.consumer.append(0, b"\x00\x01 not a request")
    rig.consumer.append(0, record(tid(0)))
    with caplog.at_level(logging.WARNING):
        for _ in range(600):  # ten minutes of 1 s rounds
            rig.step(1.0)
    dlq_attempts = rig.producer.failed
    assert 5 <= dlq_attempts <= 20  # backing off to a minute, not one send per round
    assert any(
        r.levelno == logging.ERROR and "commit waits" in r.getMessage() for r in caplog.records
    )
    assert _sample("spanstream_dlq_unsent_records") == 1
    assert _sample("spanstream_dlq_delivery_failures_total", reason="_MSG_TIMED_OUT") >= 5
    assert rig.writer.rows == [tid(0)] and max(rig.commits()) == 0
    rig.producer.down.clear()
    rig.step(60.0)
    rig.step()
    assert max(rig.commits()) == 2 and _sample("spanstream_dlq_unsent_records") == 0


def test_a_record_librdkafka_could_not_decompress_is_dead_lettered(rig: Rig) -> None:
    """librdkafka reports a batch that does not decompress (a zstd bomb past
    receive.message.max.bytes) as an error naming its offset and fetches it again
    forever (measured): the partition stalled behind it."""
    rig.consumer.append(0, record(tid(0)))
    rig.consumer.append(0, None, error=KafkaError(KafkaError._BAD_COMPRESSION, "too big"))
    rig.consumer.append(0, record(tid(1)))
    rig.step()  # record 0, then the error: dead-lettered, and a seek past it
    rig.step()  # record 2
    rig.step(WAIT)
    rig.step()
    (letter,) = rig.producer.delivered[DLQ]
    headers = dict(letter.headers_)
    assert headers["spanstream.error.reason"] == b"undeliverable"
    assert headers["spanstream.source.offset"] == b"1"
    assert sorted(rig.writer.rows) == [tid(0), tid(1)]
    assert max(rig.commits()) == 3


def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_bad_batch_reported_at_its_first_offset_is_stepped_through(rig: Rig) -> None:
    """A batch of three records that does not decompress: librdkafka names the batch's
    first offset each time it fetches it, from wherever the seek put the fetch."""
    rig.consumer.append(0, record(tid(0)))
    for _ in range(3):
        at = rig.consumer.append(0, None, error=KafkaError(KafkaError._BAD_COMPRESSION, "big"))
        rig.consumer.logs[0][at].offset_ = 1  # the batch's first offset
    rig.consumer.append(0, record(tid(1)))
    for _ in range(4):
        rig.step()
    rig.step(WAIT)
    rig.step()
    offsets = [dict(m.headers_)["spanstream.source.offset"] for m in rig.producer.delivered[DLQ]]
    assert offsets == [b"1", b"2", b"3"]
    assert sorted(rig.writer.rows) == [tid(0), tid(1)]
    assert max(rig.commits()) == 5


def test_the_round_drains_the_service_graph_on_its_interval(rig: Rig) -> None:
    rig.core.graph = GraphAggregator(window_seconds=60)
    flusher = GraphFlusher(rig.core.graph, _GraphStore(), rig.clock, interval=20.0)  # type: ignore[arg-type]
    rig.loop.graph = flusher
    rig.consumer.append(0, record(tid(0)))
    rig.step()
    rig.step(WAIT)  # decided: in the aggregator, not drained yet
    assert rig.core.graph.counts.traces == 1 and flusher.history.windows() == []
    rig.step(20.0)
    (window,) = flusher.history.windows()
    assert sum(st.spans for st in window.self_time.values()) == 1


class _GraphStore:
    def insert(self, table: str, columns: object, dedup_token: str | None = None) -> int:
        return 0
