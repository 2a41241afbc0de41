"""Traces -> Kafka messages, in the Collector kafka exporter's framings.

* Keyed (default, ``partition_traces_by_id: true``): one message per trace,
  key = the 32-char lowercase hex trace id.
* Split: a share of traces goes out in two messages, the earliest-ending
  spans first and the rest ``split_delay_s`` after the trace ends, as when a
  trace's spans straddle several Collector batch flushes. Both keep the key.

Messages go out in due order, a part being due when its last span ends.
* Batched (``batch_traces`` = N > 0): N trace parts per message with no key,
  as the exporter sends whole batches without ``partition_traces_by_id``.

>>> from pipeline.generate.schedule import StreamSpec, generate_traces
>>> traces = list(generate_traces(StreamSpec(seed=1, start_ns=0, rate=10.0, count=4)))
>>> msgs = list(to_messages(traces, Framing(batch_traces=3)))
>>> [m.key for m in msgs], [len(m.trace_ids) for m in msgs]
([None, None], [3, 1])
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from pipeline.generate.encode import build_request, encode
from pipeline.generate.traces import GenSpan, Trace

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Framing:
    """How traces become messages; see the module docstring."""

    encoding: str = "otlp_proto"
    split_share: float = 0.0
    split_delay_s: float = 2.0
    batch_traces: int = 0
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Part:
    """Some spans of one trace that travel in one message, due at ``due_ns``."""

    trace: Trace
    spans: Sequence[GenSpan]
    due_ns: int


@dataclass(frozen=True, slots=True)
class Message:
    """One Kafka record to send: key (None = no key), value, and what it holds."""

    key: bytes | None
    value: bytes
    due_ns: int
    trace_ids: tuple[str, ...]
    span_count: int


def split_spans(
    spans: Sequence[GenSpan], rng: random.Random
) -> tuple[list[GenSpan], list[GenSpan]]:
    """Two non-empty parts: spans that ended first, then the rest (the root ends last)."""
    ordered = sorted(spans, key=lambda s: s.end_ns)
    cut = rng.randint(1, len(ordered) - 1)
    return ordered[:cut], ordered[cut:]


def trace_parts(traces: Iterable[Trace], framing: Framing) -> Iterator[Part]:
    """Parts in due order: a part is due when its last span ends (when an SDK exports it);
    a split trace's second part ``split_delay_s`` after the trace ends."""
    rng = random.Random(f"{framing.seed}:split")
    delay = int(framing.split_delay_s * NS)
    pending: list[tuple[int, int, Part]] = []
    seq = 0
    for trace in traces:
        # Later traces start no earlier than this one, so these are final.
        while pending and pending[0][0] <= trace.start_ns:
            yield heapq.heappop(pending)[2]
        end = max(s.end_ns for s in trace.spans)
        if len(trace.spans) > 1 and rng.random() < framing.split_share:
            first, second = split_spans(trace.spans, rng)
            parts = [Part(trace, first, first[-1].end_ns), Part(trace, second, end + delay)]
        else:
            parts = [Part(trace, trace.spans, end)]
        for part in parts:
            heapq.heappush(pending, (part.due_ns, seq, part))
            seq += 1
    while pending:
        yield heapq.heappop(pending)[2]


def _message(parts: Sequence[Part], encoding: str, keyed: bool) -> Message:
    req = build_request((p.trace, p.spans) for p in parts)
    trace_ids = tuple(dict.fromkeys(p.trace.trace_id_hex for p in parts))
    key = trace_ids[0].encode() if keyed else None
    span_count = sum(len(p.spans) for p in parts)
    return Message(key, encode(req, encoding), parts[-1].due_ns, trace_ids, span_count)


def to_messages(traces: Iterable[Trace], framing: Framing) -> Iterator[Message]:
    """The messages for ``traces`` in send order."""
    parts = trace_parts(traces, framing)
    if framing.batch_traces <= 0:
        for part in parts:
            yield _message([part], framing.encoding, keyed=True)
        return
    batch: list[Part] = []
    for part in parts:
        batch.append(part)
        if len(batch) == framing.batch_traces:
            yield _message(batch, framing.encoding, keyed=False)
            batch = []
    if batch:
        yield _message(batch, framing.encoding, keyed=False)
