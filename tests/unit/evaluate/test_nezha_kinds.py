"""Span kinds reconstructed from where the Nezha data's calls cross services."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipeline.evaluate import nezha
from pipeline.evaluate.nezha_kinds import CLIENT, SERVER, reconstruct

TRACE = "a" * 32


def span(sid: str, parent: str, service: str, trace: str = TRACE) -> nezha.ClipSpan:
    return nezha.ClipSpan(trace, sid * 16, parent * 16 if parent else "", service, "op", 1, 2)


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        # web root -> web client span -> cart server span: a gRPC call as Nezha records it
        ([span("1", "", "web"), span("2", "1", "web"), span("3", "2", "cart")],
         {"2": CLIENT, "3": SERVER}),
        # a root calling straight into another service: the root is the client
        ([span("1", "", "web"), span("2", "1", "cart")], {"1": CLIENT, "2": SERVER}),
        # a chain: cart's span is the server of web's call; its child in db is a server too,
        # but cart's span keeps its server role (no other role), so db's call has no client
        ([span("1", "", "web"), span("2", "1", "cart"), span("3", "2", "db")],
         {"1": CLIENT, "2": SERVER, "3": SERVER}),
        # within one service: nothing
        ([span("1", "", "web"), span("2", "1", "web")], {}),
        # a parent not in the data: unknown service, nothing
        ([span("2", "9", "cart")], {}),
        # a span that is its own parent: nothing
        ([span("1", "1", "cart")], {}),
        # the same span ids in another trace are another span
        ([span("1", "", "web"), span("2", "1", "web", "b" * 32)], {}),
        # a repeated span (clips overlap): the first one is read
        ([span("1", "", "web"), span("2", "1", "cart"), span("2", "1", "web")],
         {"1": CLIENT, "2": SERVER}),
    ],
)  # fmt: skip
def test_reconstruct(spans: list[nezha.ClipSpan], expected: dict[str, int]) -> None:
    kinds = reconstruct(spans)
    assert {sid[0]: kind for (_, sid), kind in kinds.items()} == expected


def test_messages_carry_the_kinds_and_leave_the_rest_unspecified() -> None:
    start = 1_661_140_000 * 10**9
    rows = [
        f"{TRACE},{'1' * 16},root,frontend-579b9bff58-t2dbm,op,{start},{start + 10**6},1\n",
        f"{TRACE},{'2' * 16},{'1' * 16},frontend-579b9bff58-t2dbm,op,{start},{start + 9},1\n",
        f"{TRACE},{'3' * 16},{'2' * 16},cartservice-579f59597d-wc2lz,op,{start},{start + 8},1\n",
    ]
    clip = nezha.parse_clip("x", nezha.HEADER + "".join(rows))
    placed = nezha.place([clip])
    for kinds, expected in [(None, [0, 0, 0]), (reconstruct(clip.spans), [0, CLIENT, SERVER])]:
        (msg,) = nezha.messages(placed, kinds)
        req = ExportTraceServiceRequest.FromString(msg.request.SerializeToString())
        got = {
            s.span_id.hex()[0]: s.kind
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        }
        assert [got[k] for k in "123"] == expected
