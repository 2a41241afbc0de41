"""Scenario 7: ~1% bad records mixed into valid traffic; the worker dead-letters each one.

Eight kinds of bad record, produced while the generator sends the valid
stream, spread over the input partitions. Every one must land in the DLQ
unchanged with its error headers (a record holding zero spans is dead-lettered
too, reason ``no_spans``: nothing disappears silently), every valid span must
be stored, the group must commit to the end of every partition, and the worker
must be the same process throughout.
"""

from __future__ import annotations

import itertools
import json
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from pipeline.otlp.samples import deep_proto_request, proto_request, proto_span, sample_message
from tests.faults.conftest import MakeRig
from tests.faults.harness import TRACES

pytestmark = pytest.mark.faults

MAX_BYTES = 300_000
PROTO = [("content-type", b"application/x-protobuf")]
JSON = [("content-type", b"application/json")]


def _truncated() -> bytes:
    whole = sample_message(spans=5)
    cut = whole[: len(whole) - 7]
    with pytest.raises(Exception):  # noqa: B017 - any parse error: it must not be valid
        ExportTraceServiceRequest.FromString(cut)
    return cut


def _bad_utf8() -> bytes:
    raw = proto_request([proto_span(name="BADNAME_")]).SerializeToString()
    return raw.replace(b"BADNAME_", b"BAD\xff\xfeNM_")


def _zero_spans() -> bytes:
    rs = ResourceSpans()
    rs.resource.attributes.add(key="service.name").value.string_value = "ghost"
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


def _json_text() -> bytes:
    span = {
        "traceId": "ab" * 16,
        "spanId": "cd" * 8,
        "name": "GET /",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000005000000",
    }
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    return json.dumps(doc).encode()


def _too_large() -> bytes:
    big = proto_span(attributes={"blob": "x" * (MAX_BYTES + 1000)})
    return proto_request([big]).SerializeToString()


#: kind -> (value, headers, the DLQ reason expected)
BAD: dict[str, tuple[bytes, list[tuple[str, bytes]], str]] = {
    "truncated_proto": (_truncated(), [], "bad_proto"),
    "json_as_proto": (_json_text(), PROTO, "bad_proto"),
    # binary ids are not UTF-8: the JSON decoder rejects the whole value first (decode.py)
    "proto_as_json": (sample_message(spans=3), JSON, "bad_utf8"),
    "too_large": (_too_large(), [], "too_large"),
    "deep_anyvalue": (deep_proto_request(5000), [], "too_deep"),
    "invalid_utf8": (_bad_utf8(), [], "bad_utf8"),
    "empty": (b"", [], "empty"),
    "zero_spans": (_zero_spans(), [], "no_spans"),
}


def test_bad_records_go_to_the_dlq_and_valid_spans_are_all_stored(make_rig: MakeRig) -> None:
    rig = make_rig(SPANSTREAM_MAX_MESSAGE_BYTES=str(MAX_BYTES))
    rig.start()
    pid = rig.worker.pid
    per_kind = max(1, TRACES // 100 // len(BAD))  # ~1% of the records
    plan = [kind for kind in BAD for _ in range(per_kind)]
    producer = rig.producer()
    partitions = itertools.cycle(range(6))
    with rig.generating("stream", TRACES, "--split-traces", "0.1") as gen:
        for n, kind in enumerate(plan):
            value, headers, _ = BAD[kind]
            producer.produce(
                rig.topics.input, value=value, partition=next(partitions),
                headers=[*headers, ("x-fault-kind", kind.encode()), ("x-fault-n", str(n).encode())],
            )  # fmt: skip
            producer.poll(0)
            if gen.poll() is None:
                time.sleep(0.03)  # pace the bad records over the generator's run
    assert producer.flush(30) == 0
    rig.faults = len(plan)

    rig.drain()

    rig.wait_committed_to_end(120, "offsets committed to the end")
    dlq = rig.read_topic(rig.topics.dlq)
    got: dict[str, list[str]] = {}
    for msg in dlq:
        found = dict(msg.headers() or [])
        kind = found["x-fault-kind"].decode()
        reason = found["spanstream.error.reason"].decode()
        assert (msg.value() or b"") == BAD[kind][0], f"{kind}: DLQ value differs from the input"
        for name in ("spanstream.error.detail", "spanstream.source.offset"):
            assert found.get(name), f"{kind}: header {name} missing"
        got.setdefault(kind, []).append(reason)
    reasons = {kind: sorted(set(r)) for kind, r in got.items()}

    acc = rig.finish(
        "bad-input-1pct",
        dlq=len(dlq),
        reasons=reasons,
        bad_records=len(plan),
        same_worker_pid=rig.worker.pid == pid,
        notes=f"{len(plan)} bad records of {len(BAD)} kinds; zero-span records are "
        "dead-lettered (no_spans)",
    )

    assert rig.worker.pid == pid and rig.worker.starts == 1
    assert {kind: len(r) for kind, r in got.items()} == dict.fromkeys(BAD, per_kind)
    assert reasons == {kind: [reason] for kind, (_, _, reason) in BAD.items()}
    assert acc.dlq == len(plan)
    assert acc.lost == 0 and acc.dup_rows == 0 and acc.unexpected == 0
