"""The Nezha clip reader on tiny hand-written clips (not the real data set)."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipeline.evaluate import nezha
from pipeline.evaluate.nezha import HEADER, NS_PER_S

T0 = 1_661_140_000 * NS_PER_S  # 2022-08-22 03:46:40 UTC


def row(trace: str, span: str, parent: str, pod: str, start_s: float, ms: float = 10) -> str:
    start = T0 + int(start_s * NS_PER_S)
    end = start + int(ms * 1_000_000)
    return f"{trace * 32},{span * 16},{parent},{pod},op,{start},{end},{int(ms * 1000)}\n"


def clip(name: str, *rows: str) -> nezha.Clip:
    return nezha.parse_clip(name, HEADER + "".join(rows))


FRONT = "frontend-579b9bff58-t2dbm"
CART = "cartservice-579f59597d-wc2lz"


@pytest.mark.parametrize(
    ("pod", "service"),
    [
        ("frontend-579b9bff58-t2dbm", "frontend"),
        ("currencyservice-cf787dd48-vpjrd", "currencyservice"),
        ("redis-cart-7f8b9c6d5-abcde", "redis-cart"),
        ("standalone", "standalone"),  # no replica-set suffix: kept whole
        ("a-b", "a-b"),
    ],
)
def test_service_of_pod(pod: str, service: str) -> None:
    assert nezha.service_of_pod(pod) == service


def test_parse_clip_reads_spans_and_roots() -> None:
    c = clip("03_53", row("a", "1", "root", FRONT, 0), row("a", "2", "1" * 16, CART, 0.001))
    root, child = c.spans
    assert (root.parent_id, root.service, child.parent_id, child.service) == (
        "",
        "frontend",
        "1" * 16,
        "cartservice",
    )
    assert child.end_ns - child.start_ns == 10_000_000
    assert c.skipped == 0


def test_parse_clip_counts_bad_rows_and_keeps_the_rest() -> None:
    good = row("a", "1", "root", FRONT, 0)
    bad = [
        "nothex,1111111111111111,root,p,op,1,2,1\n",  # trace id
        f"{'a' * 32},{'1' * 16},root,p,op,soon,2,1\n",  # time
        f"{'a' * 32},{'1' * 16},root,p,op,5,2,1\n",  # ends before it starts
        "short,row\n",
    ]
    c = clip("x", good, *bad)
    assert (len(c.spans), c.skipped) == (1, 4)


def test_parse_faults_reads_inject_time_as_utc_and_ignores_timestamp() -> None:
    doc = {
        "04": [
            {
                "inject_time": "2022-08-22 04:02:07",
                "inject_timestamp": "1661112127",  # 8 h off: must not be used
                "inject_pod": FRONT,
                "inject_type": "return",
            }
        ],
        "03": [
            {
                "inject_time": "2022-08-22 03:53:54",
                "inject_timestamp": "1661111634",
                "inject_pod": CART,
                "inject_type": "cpu_contention",
            }
        ],
    }
    faults = nezha.parse_faults(json.dumps(doc))
    assert [(f.inject_ns // NS_PER_S, f.service, f.kind) for f in faults] == [
        (1_661_140_434, "cartservice", "cpu_contention"),  # 03:53:54 read as UTC
        (1_661_140_927, "frontend", "return"),
    ]


def three_clips() -> list[nezha.Clip]:
    # Two neighbouring minutes (overlapping by 2 s), then a gap of ~7 minutes.
    return [
        clip("00_10", row("c", "3", "root", CART, 600), row("c", "4", "root", CART, 630, ms=500)),
        clip("00_01", row("a", "1", "root", FRONT, 0), row("a", "2", "root", FRONT, 59, ms=1000)),
        clip("00_02", row("b", "5", "root", FRONT, 58), row("b", "6", "root", FRONT, 119)),
    ]


def test_place_closes_gaps_and_keeps_neighbours_together() -> None:
    placed = nezha.place(three_clips())
    assert [p.clip.name for p in placed] == ["00_01", "00_02", "00_10"]
    assert [p.shift_ns for p in placed[:2]] == [0, 0]  # one recording: untouched
    # The clip after the gap starts where the placed ones end (119 s + 10 ms).
    assert placed[2].start_ns == placed[1].end_ns
    assert placed[2].shift_ns == -(600 - 119) * NS_PER_S + 10_000_000


def test_place_leaves_out_empty_clips() -> None:
    placed = nezha.place([clip("empty"), *three_clips()])
    assert "empty" not in [p.clip.name for p in placed]


def test_map_time_follows_the_clip_shift() -> None:
    placed = nezha.place(three_clips())
    inside = nezha.map_time(placed, T0 + 615 * NS_PER_S)
    assert inside == nezha.MappedTime(T0 + (615 - 600 + 119) * NS_PER_S + 10_000_000, 0.0)
    assert nezha.map_time(placed, T0 + 30 * NS_PER_S).replay_ns == T0 + 30 * NS_PER_S


def test_map_time_in_a_gap_moves_to_the_next_clip_start() -> None:
    placed = nezha.place(three_clips())
    mapped = nezha.map_time(placed, T0 + 590 * NS_PER_S)
    assert mapped == nezha.MappedTime(placed[2].start_ns, 10.0)


def test_messages_one_request_per_trace_without_repeats() -> None:
    clips = three_clips()
    clips.append(clip("00_03", row("b", "6", "root", FRONT, 119)))  # a repeated span
    msgs = list(nezha.messages(nezha.place(clips)))
    assert [m.key for m in msgs] == [b"a" * 32, b"b" * 32, b"c" * 32]
    spans = [
        [s for rs in m.request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        for m in msgs
    ]
    assert [len(s) for s in spans] == [2, 2, 2]
    # Times on the replay timeline; each trace is due when its last span ends.
    shift = nezha.place(clips)[-1].shift_ns
    assert spans[2][0].start_time_unix_nano == T0 + 600 * NS_PER_S + shift
    assert msgs[2].send_ns == max(s.end_time_unix_nano for s in spans[2])


def test_request_round_trips_as_otlp() -> None:
    c = clip("x", row("a", "1", "root", FRONT, 0), row("a", "2", "1" * 16, CART, 0.001))
    (msg,) = nezha.messages(nezha.place([c]))
    req = ExportTraceServiceRequest.FromString(msg.request.SerializeToString())
    services = [rs.resource.attributes[0].value.string_value for rs in req.resource_spans]
    assert services == ["frontend", "cartservice"]
    child = req.resource_spans[1].scope_spans[0].spans[0]
    assert (child.trace_id.hex(), child.parent_span_id.hex(), child.name) == (
        "a" * 32,
        "1" * 16,
        "op",
    )
    assert req.resource_spans[0].scope_spans[0].spans[0].parent_span_id == b""
