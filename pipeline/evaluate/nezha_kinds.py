"""Span kinds reconstructed where the Nezha data implies them (pure; a reconstruction).

The data set records no span kind, so the service graph (which pairs client
spans with their server children, as the Collector's servicegraph connector
does) finds no call. The clips do say where a call crosses services: a span
whose parent lies in another service is the server side of a call
(``SPAN_KIND_SERVER``), and that parent is its client side
(``SPAN_KIND_CLIENT``), but only when the parent has no other role (it is not
itself the server side of a call). Every other span stays unspecified (0).

>>> from pipeline.evaluate.nezha import ClipSpan
>>> def s(sid: str, parent: str, service: str) -> ClipSpan:
...     return ClipSpan("t" * 32, sid * 16, parent * 16 if parent else "", service, "op", 1, 2)
>>> kinds = reconstruct([s("a", "", "web"), s("b", "a", "web"), s("c", "b", "cart")])
>>> sorted((sid[0], kind) for (_, sid), kind in kinds.items())
[('b', 3), ('c', 2)]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from pipeline.evaluate.nezha import ClipSpan

UNSPECIFIED: Final = 0
SERVER: Final = 2
CLIENT: Final = 3

#: (trace id, span id) -> OTLP ``Span.SpanKind`` number; spans not in it stay unspecified.
Kinds = dict[tuple[str, str], int]


def reconstruct(spans: Iterable[ClipSpan]) -> Kinds:
    """Kinds of the spans at a service boundary (see the module docstring).

    A span id repeated in a trace (clips overlap) is read once, first one wins.
    """
    service: dict[tuple[str, str], str] = {}
    parent_of: dict[tuple[str, str], tuple[str, str]] = {}
    for span in spans:
        key = (span.trace_id, span.span_id)
        if key in service:
            continue
        service[key] = span.service
        if span.parent_id and span.parent_id != span.span_id:
            parent_of[key] = (span.trace_id, span.parent_id)
    servers = {
        key
        for key, parent in parent_of.items()
        if parent in service and service[parent] != service[key]
    }
    kinds: Kinds = dict.fromkeys(servers, SERVER)
    for key in servers:
        parent = parent_of[key]
        if parent not in servers:
            kinds[parent] = CLIENT
    return kinds
