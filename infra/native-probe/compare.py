"""The Rust probe against the C scan and upb: CPU per span on bench input, and hostile bytes.

Usage (the probe built and on PYTHONPATH, see README.md):
    python infra/native-probe/compare.py speed [--messages 2000] [--reps 9]
    python infra/native-probe/compare.py hostile [--mutations 20000]

speed: each decoder runs over the same ``spanstream bench`` messages, the
decoders alternating, ``--reps`` times each, timed with ``time.process_time``.
hostile: every decoder meets the same hostile inputs in a child process (a
crash shows as a signal, not as a lost run); the table counts accepted,
declined (``valid`` False, ``scan`` None: handed to upb/Python), rejected (an
exception) and crashed inputs.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import ports


def decoders() -> dict[str, Callable[[bytes], Any]]:
    import otlp_probe
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from pipeline.enrich import Enricher
    from pipeline.otlp import _heads
    from pipeline.otlp.heads import _kv_string, _Scanner, _slow_head, heads_from_proto

    parse = ExportTraceServiceRequest.FromString
    enricher = Enricher()
    state = _Scanner(enricher)
    cfg = enricher.config

    def c_scan(v: bytes) -> Any:
        return _heads.scan(
            v, state.make_context, state.contexts, state.derive_memo, state.derive,
            _slow_head, _kv_string, cfg.max_span_attributes,
            cfg.max_attribute_value_length, 100_000,
        )  # fmt: skip

    def upb_tuples(v: bytes) -> list[tuple[Any, ...]]:
        out = []
        for rs in parse(v).resource_spans:
            service = ""
            for kv in rs.resource.attributes:
                if kv.key == "service.name" and kv.value.WhichOneof("value") == "string_value":
                    service = kv.value.string_value
                    break
            for ss in rs.scope_spans:
                for s in ss.spans:
                    start = s.start_time_unix_nano
                    out.append(
                        (s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), start,
                         s.end_time_unix_nano - start, service, s.name, s.status.code == 2)
                    )  # fmt: skip
        return out

    return {
        "upb FromString": parse,
        "upb FromString + tuples": upb_tuples,
        "C valid": _heads.valid,
        "C scan": c_scan,
        "C valid+scan (heads_from_proto)": lambda v: heads_from_proto(v, enricher),
        "Rust decode only": otlp_probe.decode_count,
        "Rust scan (tuples)": otlp_probe.scan,
        "Rust scan_subset (tuples)": otlp_probe.scan_subset,
    }


def speed(messages: int, reps: int) -> None:
    import otlp_probe

    from pipeline.enrich import Enricher
    from pipeline.otlp.heads import heads_from_proto

    values = ports.bench_messages(messages)
    spans = ports._spans(values)
    for rust in (otlp_probe.scan, otlp_probe.scan_subset):
        check(values, rust, lambda v: heads_from_proto(v, Enricher()))
    table = decoders()
    times: dict[str, list[float]] = {k: [] for k in table}
    for fn in table.values():
        [fn(v) for v in values]  # warm: memo, contexts, caches
    for r in range(reps):
        names = list(table)
        names = names[r % len(names) :] + names[: r % len(names)]
        for name in names:
            fn = table[name]
            gc.collect()
            start = time.process_time()
            for v in values:
                fn(v)
            times[name].append(1e6 * (time.process_time() - start) / spans)
    print(
        f"messages={len(values)} spans={spans} "
        f"bytes/msg={sum(map(len, values)) / len(values):.0f} reps={reps}"
    )
    print("| decoder | us/span median | min | max |")
    print("|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {statistics.median(t):.3f} | {min(t):.3f} | {max(t):.3f} |")


def check(values: list[bytes], rust: Callable[[bytes], Any], c: Callable[[bytes], Any]) -> None:
    """The probe's spans equal the C heads' on every field they share."""
    same = differ = 0
    for v in values:
        for r, h in zip(rust(v), c(v), strict=True):
            ours = (h.trace_id, h.span_id, h.parent_span_id, h.timestamp_ns, h.duration_ns)
            ok = r[:5] == ours and r[5] == h.service_name and r[7] == h.is_error
            same, differ = same + ok, differ + (not ok)
    print(f"check: {same} spans equal to the C heads, {differ} differ")


# --- hostile bytes -----------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def request(span: bytes, resource_attr: bytes = b"") -> bytes:
    resource = field(1, resource_attr) if resource_attr else b""
    return field(1, resource + field(2, field(2, span)))


def nested_anyvalue(depth: int) -> bytes:
    """A span attribute whose value is a kvlist nested ``depth`` deep."""
    # Each level only prefixes the one inside it, so build the prefixes inside-out
    # and join once (concatenating level by level is quadratic).
    size, prefixes = 3, [b"", field(1, b"x")]  # AnyValue{string_value}
    key = field(1, b"k")
    for _ in range(depth):
        kv_size = len(key) + len(varint(size)) + 1 + size  # KeyValue{key, value}
        list_size = 1 + len(varint(kv_size)) + kv_size  # KeyValueList{values}
        prefixes.append(
            b"\x32" + varint(list_size) + b"\x0a" + varint(kv_size) + key + b"\x12" + varint(size)
        )
        size = sum(map(len, prefixes[-1:])) + size
    value = b"".join(reversed(prefixes))
    assert len(value) == size
    return field(9, key + field(2, value))  # Span.attributes


def hostile_cases(seed: int, mutations: int) -> dict[str, list[bytes]]:
    good = ports.bench_messages(20, seed)
    # A span the pipeline accepts: non-zero ids, a start and an end (fixed64 7 and 8).
    start = 1_700_000_000_000_000_000
    ids = (
        field(1, bytes(range(1, 17)))
        + field(2, bytes(range(1, 9)))
        + b"\x39" + start.to_bytes(8, "little")
        + b"\x41" + (start + 1000).to_bytes(8, "little")
    )  # fmt: skip
    rng = random.Random(seed)
    flips = []
    for _ in range(mutations):
        v = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(v))
            v[i] = rng.randrange(256) if rng.random() < 0.5 else v[i] ^ (1 << rng.randrange(8))
        flips.append(bytes(v))
    huge = [field(1, b"")[:-1] + varint(n) for n in (2**31, 2**32 + 5, 2**62, 2**64 - 1)] + [
        request(ids + varint(5 << 3 | 2) + varint(n) + b"abc") for n in (2**31, 2**63)
    ]
    return {
        "truncated (every prefix of 20 messages)": [g[:i] for g in good for i in range(len(g))],
        "invalid UTF-8 (span name)": [
            request(ids + field(5, b"\xff\xfe")),
            request(ids + field(5, b"ok\xc3")),
        ],
        "invalid UTF-8 (service.name)": [
            request(ids, field(1, field(1, b"service.name") + field(2, field(1, b"\xff"))))
        ],
        "kvlist nesting 20 / 30 levels (3 messages each)": [
            request(ids + nested_anyvalue(d)) for d in (20, 30)
        ],
        "kvlist nesting 200 / 10k / 100k levels": [
            request(ids + nested_anyvalue(d)) for d in (200, 10_000, 100_000)
        ],
        "huge lengths": huge,
        "random byte mutations": flips,
    }


def child(name: str, case: str, seed: int, mutations: int) -> None:
    fn = decoders()[name]
    accepted = declined = rejected = 0
    for v in hostile_cases(seed, mutations)[case]:
        try:
            result = fn(v)
        except Exception:
            rejected += 1
            continue
        # valid() says False and scan() returns None to hand the record to upb/Python.
        if result is False or result is None:
            declined += 1
        else:
            accepted += 1
    print(accepted, declined, rejected)


def hostile(mutations: int, seed: int = 7) -> None:
    names = [
        "upb FromString",
        "C valid",
        "C scan",
        "C valid+scan (heads_from_proto)",
        "Rust scan (tuples)",
        "Rust scan_subset (tuples)",
    ]
    cases = list(hostile_cases(seed, mutations))
    print("| input | n | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for case in cases:
        n = len(hostile_cases(seed, mutations)[case])
        cells = []
        for name in names:
            proc = subprocess.run(
                [sys.executable, __file__, "child", name, case, str(seed), str(mutations)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode == 0:
                a, d, r = proc.stdout.split()
                cells.append(f"{a} / {d} / {r}")
            else:
                cells.append(f"CRASH (exit {proc.returncode})")
        print(f"| {case} | {n} | " + " | ".join(cells) + " |")


def main() -> None:
    if sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["speed", "hostile"])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--mutations", type=int, default=20000)
    args = ap.parse_args()
    if args.mode == "speed":
        speed(args.messages, args.reps)
    else:
        hostile(args.mutations)


if __name__ == "__main__":
    main()
