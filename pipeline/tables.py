"""A worker's view of a Faust table: only the keys of partitions it owns, with staged writes.

Faust's in-memory store keeps keys of partitions that moved to another worker,
and a timer (unlike an agent) has no current event to tie a write to a
partition. So tables are created with ``use_partitioner=True`` (a key's
changelog partition is the Java murmur2 partition of its bytes, the same one
the partials topic uses for the same key), and this view filters keys by that
partition against the worker's current assignment.

Staging: windows close inside :meth:`OwnedView.staged` and their new state
reaches the table only if the block finishes, i.e. after the closed windows
were written to ClickHouse. A failed write leaves the table as it was, so the
same windows close again on the next try instead of being lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from aiokafka.partitioner import murmur2


def key_bytes(key: str) -> bytes:
    """The bytes Faust's json key serializer writes for a str key (and the partials key)."""
    return json.dumps(key).encode()


def partition_of(key: str, partitions: int) -> int:
    """Java-compatible partition of a key, as Kafka producers with murmur2 compute it.

    >>> partition_of('["shop","GET /"]', 6) in range(6)
    True
    """
    return (murmur2(key_bytes(key)) & 0x7FFFFFFF) % partitions


class OwnedView(MutableMapping[str, Any]):
    """Keys of owned partitions only; writes go through unless a staged block is open."""

    def __init__(
        self, table: MutableMapping[str, Any], partitions: int, owned: Callable[[], set[int]]
    ) -> None:
        self._table = table
        self._partitions = partitions
        self._owned = owned
        self._stage: dict[str, Any] | None = None
        self._deleted: set[str] = set()

    def _mine(self, key: str) -> bool:
        return partition_of(key, self._partitions) in self._owned()

    def __getitem__(self, key: str) -> Any:
        if self._stage is not None:
            if key in self._deleted:
                raise KeyError(key)
            if key in self._stage:
                return self._stage[key]
        if not self._mine(key):
            raise KeyError(key)
        return self._table[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if self._stage is not None:
            self._stage[key] = value
            self._deleted.discard(key)
        else:
            self._table[key] = value

    def __delitem__(self, key: str) -> None:
        if self._stage is not None:
            self._deleted.add(key)
            self._stage.pop(key, None)
        else:
            del self._table[key]

    def __iter__(self) -> Iterator[str]:
        owned = self._owned()
        keys = {k for k in self._table if partition_of(k, self._partitions) in owned}
        if self._stage is not None:
            keys = (keys | set(self._stage)) - self._deleted
        return iter(sorted(keys))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @contextmanager
    def staged(self) -> Iterator[None]:
        """Hold writes until the block exits normally; discard them if it raises."""
        self._stage, self._deleted = {}, set()
        try:
            yield
            stage, deleted = self._stage, self._deleted
        finally:
            self._stage, self._deleted = None, set()
        for key, value in stage.items():
            self._table[key] = value
        for key in deleted:
            self._table.pop(key, None)
