"""The generate loop against an in-memory sink: accounting, headers, pacing."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import pytest

from pipeline.errors import ServiceUnavailable
from pipeline.generate.manifest import ManifestWriter
from pipeline.generate.messages import Framing
from pipeline.generate.produce import Headers, OnDelivered
from pipeline.generate.runner import RunOptions, run_generator
from pipeline.generate.schedule import StreamSpec

T0 = 1_714_521_600 * 10**9


@dataclass
class ListSink:
    """Acknowledges every record at once, at increasing offsets; can fail on demand."""

    sent: list[tuple[bytes | None, bytes, Headers | None]] = field(default_factory=list)
    polls: list[float] = field(default_factory=list)
    fail_after: int | None = None

    def send(
        self, key: bytes | None, value: bytes, headers: Headers | None, on_delivered: OnDelivered
    ) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise ServiceUnavailable("delivery failed")
        self.sent.append((key, value, headers))
        on_delivered(0, len(self.sent) - 1)

    def poll(self, timeout_s: float) -> None:
        self.polls.append(timeout_s)

    def flush(self, timeout_s: float = 60.0) -> None:
        pass


def test_every_span_is_accounted_for_in_the_manifest() -> None:
    spec = StreamSpec(seed=1, start_ns=T0, rate=10.0, count=30)
    out, sink = io.StringIO(), ListSink()
    stats = run_generator(spec, Framing(split_share=0.3), sink, ManifestWriter(out))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    traces = [doc for doc in lines if doc["type"] == "trace"]
    messages = [doc for doc in lines if doc["type"] == "message"]
    assert stats.traces == len(traces) == 30
    assert stats.messages == len(sink.sent) == len(messages) > 30
    assert sum(m["span_count"] for m in messages) == stats.spans
    assert stats.spans == sum(len(t["spans"]) for t in traces)
    assert [m["offset"] for m in messages] == list(range(len(messages)))
    assert lines[-1]["type"] == "summary" and lines[-1]["spans"] == stats.spans


@pytest.mark.parametrize(
    ("encoding", "content_type"),
    [("otlp_proto", b"application/x-protobuf"), ("otlp_json", b"application/json")],
)
def test_content_type_header_only_when_asked(encoding: str, content_type: bytes) -> None:
    spec = StreamSpec(seed=1, start_ns=T0, rate=10.0, count=2)
    plain, tagged = ListSink(), ListSink()
    run_generator(spec, Framing(encoding=encoding), plain)
    run_generator(spec, Framing(encoding=encoding), tagged, options=RunOptions(True, True))
    assert [h for _, _, h in plain.sent] == [None, None]
    assert [h for _, _, h in tagged.sent] == [[("content-type", content_type)]] * 2


def test_realtime_waits_for_each_due_time_on_the_clock() -> None:
    now = [T0]
    sink = ListSink()

    def clock() -> int:
        return now[0]

    def poll(timeout_s: float) -> None:
        sink.polls.append(timeout_s)
        now[0] += int(timeout_s * 1e9)

    sink.poll = poll  # type: ignore[method-assign]
    spec = StreamSpec(seed=1, start_ns=T0, rate=5.0, count=10, amplitude=0.0)
    run_generator(spec, Framing(), sink, options=RunOptions(realtime=True), clock=clock)
    assert len(sink.sent) == 10
    # ~2 s of stream time at 5 traces/s, waited in slices of at most 0.1 s.
    assert sum(sink.polls) > 0.5 and max(sink.polls) <= 0.1


def test_a_failed_delivery_stops_the_run() -> None:
    spec = StreamSpec(seed=1, start_ns=T0, rate=10.0, count=10)
    with pytest.raises(ServiceUnavailable):
        run_generator(spec, Framing(), ListSink(fail_after=3))
