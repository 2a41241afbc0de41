"""What the graph reads of span heads: the kind, and the peer of unpaired client spans.

A head carries its span's kind (the native scan reads it), so :func:`derive` reads
heads as they are. The peer attributes
(:data:`~pipeline.graph.derive.GRAPH_ATTRIBUTES`) are read only for client and
producer spans with no server child, from the span a head carries (JSON records,
tests) or else straight from the span's protobuf bytes: each attribute is a
``KeyValue`` whose encoding starts with its key, so the reader looks for
``0x0a <len> key 0x12 <len> 0x0a <len> value`` (a string value) in the span's bytes
instead of parsing the span (a parse costs ~10 us per span, the search well under 1;
natively, ``pipeline.native.peer_in_span``, with :func:`peer_in_span_of` its definition).
An attribute of the same name on one of the span's events could be found first: the
peer is a label, and that case is counted no differently.

>>> from pipeline.model import Span
>>> from pipeline.otlp.heads import head_of
>>> s = Span(0, "a" * 32, "b" * 16, "", "", "q", "Client", "shop", {}, "", "", {"db.system": "pg"},
...          5, "Unset", "", operation="SELECT")
>>> read_peer(head_of(s))
('pg', True)
>>> attr_in_bytes(b"\\x4a\\x13\\x0a\\x09db.system\\x12\\x06\\x0a\\x04pgsq", 0, 21, b"db.system")
'pgsq'
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline import native
from pipeline.graph.derive import (
    CALLER_KINDS,
    DATABASE_ATTRIBUTES,
    MAX_PEER,
    PEER_ATTRIBUTES,
    GraphSpan,
    peer_of,
)
from pipeline.model import SpanHead


def _needle(key: bytes) -> bytes:
    """How a KeyValue with this key starts: tag 1, length, key, tag 2 (the AnyValue)."""
    return b"\x0a" + bytes((len(key),)) + key + b"\x12"


#: (needle, names a database), in the order the rules read the attributes.
_NEEDLES = tuple(
    [(_needle(name.encode()), True) for name in DATABASE_ATTRIBUTES]
    + [(_needle(name.encode()), False) for name in PEER_ATTRIBUTES]
)


def graph_spans(heads: Iterable[SpanHead]) -> list[GraphSpan]:
    """Heads as :class:`GraphSpan` values with their peers read (client and producer spans).

    :func:`~pipeline.graph.derive.derive` reads heads as they are, and peers only where
    it needs them; this is for callers that keep the spans beyond one derivation.
    """
    return [_graph_span(h) for h in heads]


def _graph_span(h: SpanHead) -> GraphSpan:
    peer, database = read_peer(h) if h.kind in CALLER_KINDS else ("", False)
    return GraphSpan(
        h.span_id,
        h.parent_span_id,
        h.service_name,
        h.operation,
        h.kind,
        h.timestamp_ns,
        h.duration_ns,
        bool(h.is_error),
        peer,
        database,
    )


def read_peer(head: SpanHead | GraphSpan) -> tuple[str, bool]:
    """``(peer, names a database)`` of a client span's head (see module doc)."""
    if isinstance(head, GraphSpan):
        return head.peer, head.database
    if head.span is not None:
        return peer_of(head.span.span_attributes)
    found: tuple[str, bool] = native.peer_in_span(
        head.value, head.offset, head.offset + head.length, _NEEDLES, MAX_PEER
    )
    return found


def peer_in_span_of(
    value: bytes, start: int, end: int, needles: tuple[tuple[bytes, bool], ...], max_peer: int
) -> tuple[str, bool]:
    """The reference of ``pipeline.native.peer_in_span``: the peer in ``value[start:end]``.

    The first needle found whose value is a non-empty string names the peer.

    >>> needles = ((b"\\x0a\\x02db\\x12", True),)
    >>> peer_in_span_of(b"..\\x0a\\x02db\\x12\\x04\\x0a\\x02pg", 0, 99, needles, 9)
    ('pg', True)
    """
    start, end = max(start, 0), min(end, len(value))
    for needle, database in needles:
        at = value.find(needle, start, end) if needle else -1
        if at >= 0:
            found = _string_at(value, at + len(needle), end, max_peer)
            if found:
                return found, database
    return "", False


def attr_in_bytes(value: bytes, start: int, end: int, key: bytes) -> str:
    """The string value of attribute ``key`` in ``value[start:end]``, or ``""``.

    Keys are shorter than 128 bytes (one length byte); values up to 16383 bytes.
    """
    needle = _needle(key)
    at = value.find(needle, start, end)
    return "" if at < 0 else _string_at(value, at + len(needle), end, MAX_PEER)


def _string_at(value: bytes, pos: int, end: int, max_peer: int) -> str:
    """The string of the AnyValue whose length prefix is at ``pos``, or ``""``."""
    pos, any_len = _varint(value, pos, end)
    any_end = pos + any_len
    if pos < 0 or any_end > end or pos >= any_end or value[pos] != 0x0A:
        return ""
    pos, length = _varint(value, pos + 1, any_end)
    if pos < 0 or pos + length > any_end:
        return ""
    return value[pos : pos + min(length, max_peer * 4)].decode("utf-8", "replace")[:max_peer]


def _varint(value: bytes, pos: int, end: int) -> tuple[int, int]:
    """A one- or two-byte varint at ``pos``: ``(next pos, number)``, or ``(-1, 0)``."""
    if pos >= end:
        return -1, 0
    first = value[pos]
    if first < 0x80:
        return pos + 1, first
    if pos + 1 >= end or value[pos + 1] >= 0x80:
        return -1, 0
    return pos + 2, (first & 0x7F) | (value[pos + 1] << 7)
