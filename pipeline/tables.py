"""Keys of the window tables and the partials topic: their bytes and their partition.

A series key is a str (:func:`~pipeline.windows.assembler.series_key`); on the
wire and in the tables it is the JSON string Faust's json key codec wrote (the
same bytes, so the same partition, and existing changelogs still read). The
partition is Kafka's Java murmur2 partition of those bytes, so the ingest side
sends a series' partials to the same partition number the window tables keep
its state under (see :mod:`pipeline.faust.tables`).
"""

from __future__ import annotations

import json

from aiokafka.partitioner import murmur2

from pipeline.checked import StateError, parse_json


def key_bytes(key: str) -> bytes:
    """The bytes Faust's json key serializer writes for a str key (and the partials key)."""
    return json.dumps(key).encode()


def partition_of(key: str, partitions: int) -> int:
    """Java-compatible partition of a key, as Kafka producers with murmur2 compute it.

    >>> partition_of('["shop","GET /"]', 6) in range(6)
    True
    """
    return raw_partition(key_bytes(key), partitions)


def raw_partition(raw: bytes, partitions: int) -> int:
    return (murmur2(raw) & 0x7FFFFFFF) % partitions


def key_of(raw: bytes) -> str:
    """The str key of a table key's bytes; ``StateError`` unless exactly what we write.

    >>> key_of(key_bytes('["shop","GET /"]'))
    '["shop","GET /"]'
    """
    try:
        key = parse_json(raw)
    except StateError as exc:
        raise StateError("bad_key", exc.detail) from None
    if not isinstance(key, str) or key_bytes(key) != raw:
        raise StateError("bad_key", "not a JSON string as the worker writes keys")
    return key
