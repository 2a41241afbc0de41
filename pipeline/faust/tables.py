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

Encoding: the tables hold raw bytes (Faust's ``raw`` codec for keys and
values), so restoring a changelog never runs a Faust codec or model lookup on
what is in the topic. The view does the encoding itself: a key is the JSON
string Faust's json codec writes (the same bytes, so the same
partition and existing changelogs still read), a value is JSON. Reading back
is checked: a value that is not JSON (at most ``MAX_STATE_BYTES``) raises
:class:`~pipeline.checked.StateError` for the caller to reject, and a key
that is not a JSON string is skipped when iterating, counted once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from pipeline.checked import StateError, parse_json, to_json
from pipeline.rejections import Rejections
from pipeline.tables import key_bytes, key_of, partition_of, raw_partition
from pipeline.windows.stage import StagedTable


class OwnedView(StagedTable):
    """Keys of owned partitions only; writes go through unless a staged block is open.

    ``table`` maps key bytes to value bytes (a Faust table with the raw codec);
    the view maps str keys to JSON values (see the module doc).
    """

    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        partitions: int,
        owned: Callable[[], set[int]],
        name: str = "table",
    ) -> None:
        self._table = table
        self._partitions = partitions
        self._owned = owned
        self._stage: dict[str, bytes] | None = None
        self._deleted: set[str] = set()
        self.rejections = Rejections(name)
        self._bad_keys: set[bytes] = set()

    def _mine(self, key: str) -> bool:
        return partition_of(key, self._partitions) in self._owned()

    def __getitem__(self, key: str) -> Any:
        if self._stage is not None:
            if key in self._deleted:
                raise KeyError(key)
            if key in self._stage:
                return parse_json(self._stage[key])
        if not self._mine(key):
            raise KeyError(key)
        return parse_json(self._table[key_bytes(key)])

    def __setitem__(self, key: str, value: Any) -> None:
        # Encoded now: a value JSON cannot hold fails the close that wrote it, at once.
        raw = to_json(value)
        if self._stage is not None:
            self._stage[key] = raw
            self._deleted.discard(key)
        else:
            self._table[key_bytes(key)] = raw

    def __delitem__(self, key: str) -> None:
        if self._stage is not None:
            self._deleted.add(key)
            self._stage.pop(key, None)
        else:
            del self._table[key_bytes(key)]

    def __iter__(self) -> Iterator[str]:
        owned = self._owned()
        keys = {
            key
            for raw in list(self._table)
            if raw_partition(raw, self._partitions) in owned and (key := self._key(raw)) is not None
        }
        if self._stage is not None:
            keys = (keys | set(self._stage)) - self._deleted
        return iter(sorted(keys))

    def _key(self, raw: bytes) -> str | None:
        """A stored key's str, or None (counted once per key) when it is not one of ours."""
        try:
            return key_of(raw)
        except StateError as exc:
            if raw not in self._bad_keys:
                self._bad_keys.add(raw)
                self.rejections.reject(raw, exc, "skipped")
            return None

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
            self._table[key_bytes(key)] = value
        for key in deleted:
            self._table.pop(key_bytes(key), None)
