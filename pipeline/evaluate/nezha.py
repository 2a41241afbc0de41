"""Nezha Online Boutique clips -> a continuous OTLP replay plan (pure: text in, messages out).

The Nezha data set (FSE 2023, MIT) holds one-minute trace clips
(``trace/HH_MM_trace.csv``) around labelled faults (``fault_list.json``), not a
continuous day. A replay must close the gaps between clips, else every gap is a
silent stretch of event time that no detector should sit through.

Gap closing. Clips are placed in order of their first span. A clip that starts
within ``tolerance`` of the end of what is placed so far (the next minute of the
same recording; neighbouring clips overlap by a few seconds) keeps the shift of
the previous clip. A clip after a gap is shifted back so its first span starts
where the previous clip's last span ended. Event time thus runs on continuously,
and every span keeps its place within its recording.

Fault times go through the same shift: an injection inside a clip moves with that
clip. One that falls in a gap (the recording starts a few seconds after it, the
fault already on) maps to the start of the next clip, and ``clamped_s`` says by
how much. Spans repeated in overlapping clips are replayed once.

>>> def row(t: str, pod: str, start_s: int) -> str:
...     return f"{t * 32},{t * 16},root,{pod},op,{start_s}000000000,{start_s}500000000,500000\\n"
>>> csv_a = HEADER + row("a", "frontend-579b9bff58-t2dbm", 100)
>>> csv_b = HEADER + row("b", "cartservice-579f59597d-wc2lz", 400)
>>> plan = place([parse_clip("00_01", csv_a), parse_clip("00_05", csv_b)])
>>> [(p.clip.name, p.shift_ns / 10**9) for p in plan]
[('00_01', 0.0), ('00_05', -299.5)]
>>> map_time(plan, 399 * 10**9)  # in the gap: the fault was already on when clip 2 starts
MappedTime(replay_ns=100500000000, clamped_s=1.0)
>>> [m.send_ns // 10**6 for m in messages(plan)]
[100500, 101000]
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

HEADER = (
    "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n"
)
NS_PER_S = 1_000_000_000
#: Clips starting this close after what is already placed continue the same recording.
DEFAULT_TOLERANCE_NS = 5 * NS_PER_S
SCOPE_NAME = "spanstream.nezha-replay"
# Kubernetes pod names: <deployment>-<replicaset hash>-<5-char id>.
_POD = re.compile(r"^(?P<service>.+?)-[0-9a-f]{5,10}-[0-9a-z]{5}$")
_HEX = re.compile(r"^[0-9a-f]+$")


def service_of_pod(pod: str) -> str:
    """The service of a pod: its name less the ``-<replicaset>-<id>`` suffix.

    >>> service_of_pod("frontend-579b9bff58-t2dbm"), service_of_pod("redis-cart")
    ('frontend', 'redis-cart')
    """
    match = _POD.match(pod)
    return match.group("service") if match else pod


@dataclass(frozen=True, slots=True)
class ClipSpan:
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    service: str
    operation: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class Clip:
    """One clip file; ``skipped`` counts rows that could not be read (kept out, not fatal)."""

    name: str
    spans: tuple[ClipSpan, ...]
    skipped: int = 0

    @property
    def start_ns(self) -> int:
        return min(s.start_ns for s in self.spans)

    @property
    def end_ns(self) -> int:
        return max(s.end_ns for s in self.spans)


def _hex_id(value: str, length: int) -> str:
    value = value.strip().lower()
    if len(value) != length or not _HEX.match(value):
        raise ValueError(f"bad id {value!r}")
    return value


def _row(row: dict[str, str]) -> ClipSpan:
    parent = row["ParentID"].strip()
    start, end = int(row["StartTimeUnixNano"]), int(row["EndTimeUnixNano"])
    if start <= 0 or end < start:
        raise ValueError("bad times")
    return ClipSpan(
        _hex_id(row["TraceID"], 32),
        _hex_id(row["SpanID"], 16),
        "" if parent == "root" else _hex_id(parent, 16),
        service_of_pod(row["PodName"].strip()),
        row["OperationName"],
        start,
        end,
    )


def parse_clip(name: str, text: str) -> Clip:
    """A clip from its CSV text; unreadable rows are counted in ``skipped``.

    >>> clip = parse_clip("x", HEADER + "zz,s,root,p,op,1,2,1\\n")
    >>> len(clip.spans), clip.skipped
    (0, 1)
    """
    spans: list[ClipSpan] = []
    skipped = 0
    for row in csv.DictReader(io.StringIO(text)):
        try:
            spans.append(_row(row))
        except (KeyError, ValueError, TypeError, AttributeError):
            skipped += 1
    return Clip(name, tuple(spans), skipped)


@dataclass(frozen=True)
class Fault:
    inject_ns: int
    pod: str
    kind: str

    @property
    def service(self) -> str:
        return service_of_pod(self.pod)


def parse_faults(text: str) -> list[Fault]:
    """Faults of ``fault_list.json`` in time order.

    ``inject_time`` is read as UTC, the clock the span timestamps are written in;
    ``inject_timestamp`` is 8 hours off (a local-time conversion) and ignored.

    >>> doc = '{"03": [{"inject_time": "2022-08-22 03:53:54", "inject_timestamp": "0",'
    >>> doc += ' "inject_pod": "frontend-579b9bff58-t2dbm", "inject_type": "return"}]}'
    >>> f = parse_faults(doc)[0]
    >>> f.inject_ns // NS_PER_S, f.service, f.kind
    (1661140434, 'frontend', 'return')
    """
    faults = []
    for entries in json.loads(text).values():
        for e in entries:
            when = datetime.strptime(e["inject_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            faults.append(
                Fault(int(when.timestamp()) * NS_PER_S, e["inject_pod"], e["inject_type"])
            )
    return sorted(faults, key=lambda f: f.inject_ns)


@dataclass(frozen=True)
class Placed:
    """A clip and the shift (ns, <= 0) that puts it on the continuous replay timeline."""

    clip: Clip
    shift_ns: int

    @property
    def start_ns(self) -> int:
        return self.clip.start_ns + self.shift_ns

    @property
    def end_ns(self) -> int:
        return self.clip.end_ns + self.shift_ns


def place(clips: Sequence[Clip], tolerance_ns: int = DEFAULT_TOLERANCE_NS) -> list[Placed]:
    """Close the gaps between clips (see the module docstring); empty clips are left out."""
    placed: list[Placed] = []
    orig_end = shift = 0
    for clip in sorted((c for c in clips if c.spans), key=lambda c: c.start_ns):
        if placed and clip.start_ns > orig_end + tolerance_ns:
            shift = placed[-1].end_ns - clip.start_ns
            orig_end = clip.end_ns
        orig_end = max(orig_end, clip.end_ns)
        placed.append(Placed(clip, shift))
    return placed


@dataclass(frozen=True)
class MappedTime:
    replay_ns: int
    clamped_s: float  # how far a time in a gap moved forward to the next clip's start


def map_time(placed: Sequence[Placed], t_ns: int) -> MappedTime:
    """A recording time on the replay timeline, through the shift of its clip."""
    if not placed:
        raise ValueError("no clips")
    for p in placed:
        if p.clip.start_ns <= t_ns <= p.clip.end_ns:
            return MappedTime(t_ns + p.shift_ns, 0.0)
    for p in placed:
        if t_ns < p.clip.start_ns:
            return MappedTime(p.start_ns, (p.clip.start_ns - t_ns) / NS_PER_S)
    last = placed[-1]  # after every clip: nothing of it was recorded
    return MappedTime(t_ns + last.shift_ns, 0.0)


@dataclass(frozen=True)
class ReplayMessage:
    """One OTLP request keyed by its trace id (hex), due at ``send_ns`` (its last span's end)."""

    send_ns: int
    key: bytes
    request: ExportTraceServiceRequest


def _request(
    spans: Sequence[ClipSpan], shift_ns: int, kinds: Mapping[tuple[str, str], int]
) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    by_service: dict[str, Any] = {}
    for s in spans:
        scope = by_service.get(s.service)
        if scope is None:
            rs = req.resource_spans.add()
            rs.resource.attributes.add(key="service.name").value.string_value = s.service
            scope = by_service[s.service] = rs.scope_spans.add()
            scope.scope.name = SCOPE_NAME
        # No status: the data set records none. Kinds only where ``kinds`` gives one.
        out = scope.spans.add()
        out.trace_id = bytes.fromhex(s.trace_id)
        out.span_id = bytes.fromhex(s.span_id)
        if s.parent_id:
            out.parent_span_id = bytes.fromhex(s.parent_id)
        out.name = s.operation
        out.kind = kinds.get((s.trace_id, s.span_id), 0)
        out.start_time_unix_nano = s.start_ns + shift_ns
        out.end_time_unix_nano = s.end_ns + shift_ns
    return req


def messages(
    placed: Sequence[Placed], kinds: Mapping[tuple[str, str], int] | None = None
) -> Iterator[ReplayMessage]:
    """Per clip, one request per trace in send order; spans seen in an earlier clip are dropped.

    ``kinds``: span kinds by (trace id, span id) (:mod:`pipeline.evaluate.nezha_kinds`);
    without it every span is sent with none, as the data set records.
    """
    kinds = kinds or {}
    seen: set[tuple[str, str]] = set()
    for p in placed:
        traces: dict[str, list[ClipSpan]] = {}
        for s in p.clip.spans:
            key = (s.trace_id, s.span_id)
            if key not in seen:
                seen.add(key)
                traces.setdefault(s.trace_id, []).append(s)
        batch = [
            ReplayMessage(
                max(s.end_ns for s in spans) + p.shift_ns,
                tid.encode(),
                _request(spans, p.shift_ns, kinds),
            )
            for tid, spans in traces.items()
        ]
        yield from sorted(batch, key=lambda m: m.send_ns)
