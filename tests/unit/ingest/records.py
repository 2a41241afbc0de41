"""Kafka record values and a core wired like the worker's, shared by the ingest tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import Consumer, TopicPartition
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from pipeline.clock import ManualClock
from pipeline.enrich import Enricher
from pipeline.ingest.commit import CommitProtocol
from pipeline.ingest.core import Cut, DeadLetter, IngestCore
from pipeline.ingest.progress import Progress
from pipeline.otlp.decode import Decoded
from pipeline.otlp.samples import START_NS, proto_request, proto_span
from pipeline.sampling import (
    AnomalyFlags,
    ExemplarRequests,
    LatencyState,
    TraceBuffer,
    standard_policies,
)
from pipeline.sampling.buffer import DecidedTrace
from tests.unit.ingest.fakes import Event, FakeConsumer

WAIT = 5.0
CUT_INTERVAL = 1.0
MS = 1_000_000


def tid(i: int) -> str:
    """A valid 32-hex trace id for an integer."""
    return f"{i + 1:032x}"


def record(*trace_ids: str, error: bool = True, service: str = "checkout", ms: int = 5) -> bytes:
    """An OTLP protobuf request with one server span per trace id.

    Errors by default: the error policy keeps them, so a test knows the decision.
    """
    status = Status(code=Status.STATUS_CODE_ERROR) if error else Status()
    spans = [
        proto_span(
            trace_id=bytes.fromhex(trace_id),
            span_id=(i + 1).to_bytes(8, "big"),
            status=status,
            start_time_unix_nano=START_NS,
            end_time_unix_nano=START_NS + ms * MS,
        )
        for i, trace_id in enumerate(trace_ids)
    ]
    return proto_request(spans, resource={"service.name": service}).SerializeToString()


def make_core(
    clock: ManualClock, baseline_rate: float = 0.0, enricher: Enricher | None = None
) -> IngestCore:
    """An IngestCore with the standard policies, a real TraceBuffer and ``clock``."""
    exemplars = ExemplarRequests(clock)
    policies = standard_policies(baseline_rate, LatencyState(), AnomalyFlags(), exemplars)
    return IngestCore(
        buffer=TraceBuffer(WAIT, clock, policies),
        enricher=enricher or Enricher(),
        clock=clock,
        window_seconds=60,
        max_message_bytes=1_000_000,
        cut_interval_seconds=CUT_INTERVAL,
        exemplars=exemplars,
    )


@dataclass
class Ingest:
    """A core and a commit protocol on a fake consumer, driven as the loop drives them,
    without the loop's I/O (cuts count as delivered, kept traces as written)."""

    clock: ManualClock
    topic: str = "otlp_spans"
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.core = make_core(self.clock)
        self.consumer = FakeConsumer(self.topic, self.events)
        self.commits = CommitProtocol(cast(Consumer, self.consumer), self.topic)

    def assign(self, partition: int, marks: Progress | None = None, position: int = 0) -> None:
        """Take ``partition`` over; with ``marks``, from a commit at ``position`` carrying them."""
        if marks is not None:
            metadata = marks.render()
            self.consumer.stored[partition] = TopicPartition(
                self.topic, partition, position, metadata=metadata
            )
        (resume,) = self.commits.resume([TopicPartition(self.topic, partition)])
        self.core.assign(resume.partition, resume.marks, resume.recut_through)

    def take(self, partition: int, offset: int, value: bytes) -> Decoded | DeadLetter:
        result, traces = self.core.on_record(partition, offset, None, value, [])
        self.commits.track(partition, offset, traces)
        return result

    def decide_and_write(self) -> list[DecidedTrace]:
        """Steps 4 to 6: dropped traces are done; kept ones are marked, written, done."""
        decided = self.core.decided()
        kept = [trace for trace in decided if trace.kept]
        for trace in decided:
            if not trace.kept:
                self.commits.resolve(trace.refs)
        if kept:
            self.commits.mark_writes(kept)
            self.commits.written(kept)
        return decided

    def deliver(self, force: bool = False) -> list[Cut]:
        """Steps 2 and 3: announce the due cuts, then count them as delivered."""
        cuts = self.core.due_cuts(force)
        self.commits.announce(cuts)
        self.commits.delivered(cuts)
        return cuts

    def position(self, partition: int = 0) -> int:
        return self.commits.positions()[partition][0]
