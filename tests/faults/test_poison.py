"""Scenarios 12 and 13 (issue #12): one record that used to stall the whole pipeline.

12 "poison row": error spans whose times ``otel_traces`` cannot hold (start at
2^63 ns, a legal fixed64) among valid traffic. The store's OverflowError was
retried forever: no row landed for anyone, and a restart replayed into the
same wall. Now the decoders reject them (``bad_span``) and the record goes to
the DLQ.

13 "oversize/bomb record": a 10 MB record, a 1.5 MB undecodable one, a 50 MB
zstd bomb and a 200 MB gzip bomb (compressed by the producer, so each passes
the broker's 1 MB limit). The DLQ send raised MSG_SIZE_TOO_LARGE: the record
never reached the DLQ, its partition's commit froze and the records fetched
after it were never ingested. Now each is dead-lettered (cut, with its size
and hash, or as a reference for the zstd bomb librdkafka will not decompress
past ``receive.message.max.bytes``) and the partition moves on.

Both: every valid span stored, each bad record in the DLQ with its reason, the
commit at the end of every partition, the same worker pid; ``recovery_s`` is
the time from the last bad record's produce until the DLQ holds every bad
record and the group's commit has passed each of them.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from pipeline.otlp.samples import START_NS, proto_request, proto_span
from tests.faults.conftest import MakeRig
from tests.faults.harness import START_TIME, TRACES, Rig, wait_until

pytestmark = pytest.mark.faults

PAST_INT64 = 1 << 63
RSS_LIMIT_MB = 1500


def _error_span_request(start: int, end: int, event: int | None = None) -> bytes:
    span = proto_span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        status=Status(code=Status.STATUS_CODE_ERROR),
    )
    if event is not None:
        span.events.add(time_unix_nano=event, name="boom")
    return proto_request([span], resource={"service.name": "poison"}).SerializeToString()


#: kind -> (value, producer codec, the DLQ reason expected)
Bad = dict[str, tuple[bytes, str, str]]
POISON: Bad = {
    "start_2_63": (_error_span_request(PAST_INT64, PAST_INT64 + 5_000_000), "none", "bad_span"),
    "start_max_u64": (_error_span_request((1 << 64) - 1, (1 << 64) - 1), "none", "bad_span"),
    "event_2_63": (_error_span_request(START_NS, START_NS + 1, PAST_INT64), "none", "bad_span"),
}


def _big_request(size: int) -> bytes:
    return proto_request([proto_span(attributes={"blob": "x" * size})]).SerializeToString()


BOMBS: Bad = {
    "record_10mb": (_big_request(10_000_000), "lz4", "too_large"),
    "undecodable_1_5mb": (b"\xff" * 1_500_000, "lz4", "bad_proto"),
    "zstd_bomb_50mb": (bytes(50_000_000), "zstd", "undeliverable"),
    "gzip_bomb_200mb": (bytes(200_000_000), "gzip", "too_large"),
}


def _inject(rig: Rig, bad: Bad) -> tuple[dict[tuple[int, int], str], float]:
    """Produce each bad record (its codec at the producer), spread over the partitions;
    returns (partition, offset) -> kind, and when the last was acknowledged."""
    placed: dict[tuple[int, int], str] = {}
    partitions = itertools.cycle(range(6))
    for kind, (value, codec, _) in bad.items():
        producer = Producer(
            {
                "bootstrap.servers": rig.bootstrap,
                "acks": "all",
                "compression.type": codec,
                "message.max.bytes": 300_000_000,
            }
        )

        def acked(err: object, msg: object, kind: str = kind) -> None:
            assert err is None, err
            placed[(msg.partition(), msg.offset())] = kind  # type: ignore[attr-defined]

        headers = [("x-fault-kind", kind.encode())]
        producer.produce(
            rig.topics.input,
            value=value,
            partition=next(partitions),
            headers=headers,
            on_delivery=acked,
        )
        assert producer.flush(60) == 0
    return placed, time.monotonic()


def _isolated(rig: Rig, placed: dict[tuple[int, int], str]) -> Callable[[], bool]:
    def done() -> bool:
        committed = rig.committed()
        passed = all(committed.get(p, (-1, ""))[0] > o for p, o in placed)
        return passed and len(rig.read_topic(rig.topics.dlq, timeout=10)) >= len(placed)

    return done


def _run(rig: Rig, bad: Bad) -> tuple[dict[tuple[int, int], str], float]:
    """Valid traffic with the bad records in the middle; returns where they went and
    the recovery time."""
    rig.start()
    with rig.generating("stream", TRACES, "--split-traces", "0.1"):
        rig.wait_progress(1, 180, "first spans stored")
        placed, injected = _inject(rig, bad)
    # More valid records behind the bad ones on every partition, in later windows.
    after = datetime.fromisoformat(START_TIME) + timedelta(seconds=TRACES / 50 + 30)
    rig.generate("after", max(200, TRACES // 10), "--seed", "2", start=after.isoformat())
    rig.faults = len(placed)
    wait_until(_isolated(rig, placed), 180, "bad records dead-lettered and committed past")
    recovery = time.monotonic() - injected
    rig.drain()

    rig.wait_committed_to_end(120, "offsets committed to the end")
    return placed, recovery


def _check_dlq(rig: Rig, bad: Bad, placed: dict[tuple[int, int], str]) -> dict[str, str]:
    """Every bad record in the DLQ with its reason, its value whole or cut with its size."""
    reasons: dict[str, str] = {}
    for msg in rig.read_topic(rig.topics.dlq):
        found = dict(msg.headers() or [])
        where = (
            int(found["spanstream.source.partition"]),
            int(found["spanstream.source.offset"]),
        )
        kind = placed[where]
        original = bad[kind][0]
        reasons[kind] = found["spanstream.error.reason"].decode()
        value = msg.value() or b""
        if reasons[kind] == "undeliverable":  # never decompressed: a reference only
            assert value == b"", kind
        elif found.get("spanstream.dlq.truncated"):
            assert int(found.get("spanstream.source.size", b"-1")) in (len(original), -1), kind
            assert original.startswith(value) and len(value) < 1_000_000, kind
        else:
            assert value == original, f"{kind}: DLQ value differs from the input"
    return reasons


def test_poison_rows_go_to_the_dlq_and_the_rest_is_stored(make_rig: MakeRig) -> None:
    rig = make_rig()
    placed, recovery = _run(rig, POISON)
    reasons = _check_dlq(rig, POISON, placed)
    acc = rig.finish(
        "poison-row",
        recovery_s=round(recovery, 1),
        reasons=reasons,
        notes="3 error spans with times past 2^63-1 ns (start, start 2^64-1, an event) "
        "among valid traffic; recovery: last produce -> all in the DLQ, commit past them",
    )
    assert rig.worker.starts == 1 and rig.worker.running
    assert reasons == {kind: reason for kind, (_, _, reason) in POISON.items()}
    assert acc.dlq == len(POISON)
    assert acc.lost == 0 and acc.dup_rows == 0 and acc.unexpected == 0


def test_oversize_records_and_bombs_go_to_the_dlq_and_the_rest_is_stored(
    make_rig: MakeRig,
) -> None:
    rig = make_rig()
    placed, recovery = _run(rig, BOMBS)
    reasons = _check_dlq(rig, BOMBS, placed)
    hwm = _peak_rss_mb(rig.worker.pid)  # the kernel's high-water mark: no spike missed
    acc = rig.finish(
        "oversize-and-bombs",
        recovery_s=round(recovery, 1),
        reasons=reasons,
        vm_hwm_mb=hwm,
        notes="10 MB record, 1.5 MB undecodable, 50 MB zstd and 200 MB gzip bombs among "
        "valid traffic; DLQ values cut to 512 KiB; recovery: last produce -> all in the "
        "DLQ, commit past them",
    )
    assert rig.worker.starts == 1 and rig.worker.running
    assert reasons == {kind: reason for kind, (_, _, reason) in BOMBS.items()}
    assert acc.dlq == len(BOMBS)
    assert acc.lost == 0 and acc.dup_rows == 0 and acc.unexpected == 0
    assert hwm < RSS_LIMIT_MB


def _peak_rss_mb(pid: int | None) -> float:
    """VmHWM of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise AssertionError(f"no VmHWM for pid {pid}")
