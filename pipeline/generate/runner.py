"""The generate loop: traces -> messages -> sink, paced by the wall clock or as fast as possible.

In *simulated* mode timestamps follow a virtual clock from the given start
and messages go out as fast as the sink takes them. In *real-time* mode the
stream starts now and each message waits until the wall clock reaches its
due time (the wait serves delivery reports).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from pipeline.generate.encode import CONTENT_TYPES
from pipeline.generate.manifest import ManifestWriter
from pipeline.generate.messages import Framing, Message, to_messages
from pipeline.generate.produce import Headers, OnDelivered
from pipeline.generate.schedule import StreamSpec, generate_traces
from pipeline.generate.traces import Trace

log = logging.getLogger(__name__)


class Sink(Protocol):
    """What the loop needs from a producer (KafkaSink, or a list in unit tests)."""

    def send(
        self,
        key: bytes | None,
        value: bytes,
        headers: Headers | None,
        on_delivered: OnDelivered,
    ) -> None: ...

    def poll(self, timeout_s: float) -> None: ...

    def flush(self, timeout_s: float = 60.0) -> None: ...


@dataclass
class Stats:
    """What one run sent."""

    traces: int = 0
    spans: int = 0
    messages: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0

    def rates(self) -> str:
        """Human summary with traces/s and spans/s."""
        secs = max(self.elapsed_s, 1e-9)
        return (
            f"{self.traces} traces, {self.spans} spans, {self.messages} messages, "
            f"{self.bytes / 1e6:.1f} MB in {self.elapsed_s:.1f}s: "
            f"{self.traces / secs:.0f} traces/s, {self.spans / secs:.0f} spans/s"
        )


@dataclass(frozen=True)
class RunOptions:
    """Loop options that do not change what is generated."""

    realtime: bool = False
    content_type_header: bool = False
    progress_s: float = 5.0


def _recorded(
    traces: Iterator[Trace], manifest: ManifestWriter | None, stats: Stats
) -> Iterator[Trace]:
    for trace in traces:
        stats.traces += 1
        if manifest is not None:
            manifest.trace(trace)
        yield trace


def _delivered(manifest: ManifestWriter | None, msg: Message) -> OnDelivered:
    def record(partition: int, offset: int) -> None:
        if manifest is not None:
            manifest.message(msg.key, partition, offset, msg.trace_ids, msg.span_count)

    return record


def _wait_until(due_ns: int, sink: Sink, clock: Callable[[], int]) -> None:
    while (left := due_ns - clock()) > 0:
        sink.poll(min(left / 1e9, 0.1))


def run_generator(
    spec: StreamSpec,
    framing: Framing,
    sink: Sink,
    manifest: ManifestWriter | None = None,
    options: RunOptions | None = None,
    clock: Callable[[], int] = time.time_ns,
) -> Stats:
    """Generate ``spec``'s traces, frame them and send every message; flush at the end.

    ``stats.traces`` counts traces generated (a split trace's second part may
    still be pending in the framing when the count is logged).
    """
    options = options or RunOptions()
    if manifest is not None:
        manifest.anomalies(spec.anomaly_set().labels())
    headers: Headers | None = None
    if options.content_type_header:
        headers = [("content-type", CONTENT_TYPES[framing.encoding].encode())]
    stats, started = Stats(), time.monotonic()
    next_log = started + options.progress_s
    for msg in to_messages(_recorded(generate_traces(spec), manifest, stats), framing):
        if options.realtime:
            _wait_until(msg.due_ns, sink, clock)
        sink.send(msg.key, msg.value, headers, _delivered(manifest, msg))
        stats.messages += 1
        stats.spans += msg.span_count
        stats.bytes += len(msg.value)
        if (now := time.monotonic()) >= next_log:
            stats.elapsed_s = now - started
            log.info("sent %s", stats.rates())
            next_log = now + options.progress_s
    sink.flush()
    stats.elapsed_s = time.monotonic() - started
    if manifest is not None:
        manifest.summary(
            traces=stats.traces, spans=stats.spans, messages=stats.messages, seed=spec.seed
        )
    return stats
