"""The batching sink contract: add, flush one batch, return what was written, back off on failure.

>>> written = []
>>> sink = BatchingSink("t", lambda rows, tok: written.append((list(rows), tok)), str, max_rows=2)
>>> sink.add("a"); sink.full
False
>>> sink.add("b"); sink.full
True
>>> sink.flush()
['a', 'b']
>>> written
[(['a', 'b'], 't-2-ad2fbbf2e07b42c7')]
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from pipeline import metrics
from pipeline.errors import BatchRejected, SinkUnavailable

T = TypeVar("T")
Writer = Callable[[Sequence[T], str], None]
Rejected = Callable[[Sequence[T], BatchRejected], None]
log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff with a ceiling: 0.5 s, 1 s, 2 s, ... up to ``ceiling``.

    >>> b = Backoff(initial=0.5, ceiling=2.0)
    >>> [b.next() for _ in range(4)]
    [0.5, 1.0, 2.0, 2.0]
    """

    def __init__(self, initial: float = 0.5, ceiling: float = 30.0) -> None:
        self.initial = initial
        self.ceiling = ceiling
        self._current = 0.0

    def next(self) -> float:
        self._current = min(self.ceiling, max(self.initial, self._current * 2))
        return self._current

    def reset(self) -> None:
        self._current = 0.0


class BatchingSink(Generic[T]):
    """Collects rows and writes them in batches through ``writer(rows, dedup_token)``.

    A batch is sealed when its first write is attempted: rows added afterwards
    go to the next batch, so a retry sends exactly the same rows with the same
    token and ClickHouse's insert deduplication turns a retry of an insert that
    did land into a no-op. The token is a digest of the rows' ``identity``
    strings, never a counter: a counter restarts with the process and would
    make ClickHouse discard a *different* batch that reuses an old token.
    ``writer`` raises SinkUnavailable on failure.

    ``writer`` raises BatchRejected when the store refuses the rows themselves
    (a value it cannot hold): retried as it is, the batch would fail forever and
    hold everything behind it. With ``on_rejected`` set, the batch is split in
    halves, each written as its own batch under the digest of its rows (so a
    replay that rebuilds the same rows sends the same tokens), until the rows at
    fault are alone; each such row goes to ``on_rejected`` (which must keep it:
    the ingest loop dead-letters it) and the others are written. Without
    ``on_rejected`` a rejection is retried like an outage.

    :meth:`flush` and :meth:`poll` return the rows the store acknowledged in that
    call: only then has the caller's input been handled.

    ``background=True`` lets :meth:`flush` hand the batch to a writer thread and
    return at once (a ClickHouse insert spends most of its time outside the GIL,
    so the caller keeps consuming meanwhile); :meth:`poll` then finishes it. One
    batch is in flight at most, and it is written, retried and acknowledged
    exactly as a synchronous one.
    """

    def __init__(
        self,
        name: str,
        writer: Writer[T],
        identity: Callable[[T], str],
        max_rows: int = 10_000,
        background: bool = False,
        on_rejected: Rejected[T] | None = None,
    ) -> None:
        self.name = name
        self.on_rejected = on_rejected
        #: Parts of a rejected batch still to write, in order (each sealed in turn).
        self._split: list[list[T]] = []
        self._writer = writer
        self._identity = identity
        self.max_rows = max_rows
        self._pending: list[T] = []
        self._sealed: list[T] | None = None
        self._token = ""
        self._backoff = Backoff()
        self._executor = (
            ThreadPoolExecutor(1, thread_name_prefix=f"sink-{name}") if background else None
        )
        self._inflight: Future[None] | None = None

    def add(self, row: T) -> None:
        self._pending.append(row)

    def extend(self, rows: Sequence[T]) -> None:
        self._pending.extend(rows)

    def discard(self, drop: Callable[[T], bool]) -> int:
        """Forget open (not yet sealed) rows matching ``drop``; returns how many.

        The sealed batch is never changed: a retry must send the same rows under
        the same token, or an insert that did land would be written twice.
        """
        before = len(self._pending)
        self._pending = [row for row in self._pending if not drop(row)]
        return before - len(self._pending)

    @property
    def full(self) -> bool:
        return len(self._pending) >= self.max_rows

    def pending(self) -> list[T]:
        """Rows not yet written: the sealed batch (if any) first, then the open one."""
        split = [row for part in self._split for row in part]
        return [*(self._sealed or ()), *split, *self._pending]

    @property
    def pending_rows(self) -> int:
        split = sum(map(len, self._split))
        return len(self._pending) + split + (len(self._sealed) if self._sealed else 0)

    @property
    def splitting(self) -> bool:
        """Parts of a rejected batch wait: write them now, not at the next flush interval."""
        return bool(self._split) and self._inflight is None

    @property
    def writing(self) -> bool:
        """A batch is being written in the background (finished or not)."""
        return self._inflight is not None

    def poll(self) -> list[T]:
        """Finish a background write that is done; returns its rows (none, or still busy: []).

        Raises SinkUnavailable, as :meth:`flush` does, when that write failed.
        """
        if self._inflight is None or not self._inflight.done():
            return []
        return self._finish()

    def flush(self, background: bool = False) -> list[T]:
        """Write one batch; returns its rows once written. Raises SinkUnavailable to back off.

        A background write in flight is waited for first (and is the batch this
        call writes). ``background`` starts the write in the writer thread and
        returns [] (a sink made with ``background=False`` always writes here).
        """
        if self._inflight is not None:
            return self._finish()
        if self._sealed is None:
            if self._split:
                self._sealed = self._split.pop(0)
            elif not self._pending:
                return []
            else:
                self._sealed, self._pending = self._pending, []
            self._token = self._digest(self._sealed)
        if background and self._executor is not None:
            self._inflight = self._executor.submit(self._writer, self._sealed, self._token)
            return []
        try:
            self._writer(self._sealed, self._token)
        except SinkUnavailable as exc:
            self._failed(exc)
            raise
        except BatchRejected as exc:
            return self._rejected(exc)
        return self._written()

    def _finish(self) -> list[T]:
        assert self._inflight is not None
        future, self._inflight = self._inflight, None
        try:
            future.result()
        except SinkUnavailable as exc:
            self._failed(exc)
            raise
        except BatchRejected as exc:
            return self._rejected(exc)
        return self._written()

    def _failed(self, exc: SinkUnavailable) -> None:
        assert self._sealed is not None
        exc.retry_after = self._backoff.next()
        metrics.INSERT_RETRIES.labels(self.name).inc()
        log.warning(
            "%s: write of %d rows failed, retry in %.1fs: %s",
            self.name,
            len(self._sealed),
            exc.retry_after,
            exc,
        )

    def _rejected(self, exc: BatchRejected) -> list[T]:
        """Split the sealed batch, or hand its one row to ``on_rejected``; nothing written."""
        assert self._sealed is not None
        if self.on_rejected is None:
            retry = SinkUnavailable(f"rows rejected, nobody to take them: {exc}")
            self._failed(retry)
            raise retry from exc
        sealed, self._sealed = self._sealed, None
        metrics.INSERT_REJECTED.labels(self.name).inc()
        if len(sealed) == 1:
            log.error("%s: row rejected by the store, handing it over: %s", self.name, exc)
            self.on_rejected(sealed, exc)
            return []
        half = len(sealed) // 2
        self._split[:0] = [sealed[:half], sealed[half:]]
        log.warning(
            "%s: batch of %d rows rejected, writing it in halves to isolate the bad rows: %s",
            self.name,
            len(sealed),
            exc,
        )
        return []

    def _written(self) -> list[T]:
        assert self._sealed is not None
        sealed, self._sealed = self._sealed, None
        self._backoff.reset()
        return sealed

    def _digest(self, rows: Sequence[T]) -> str:
        h = hashlib.blake2b(digest_size=8)
        for row in rows:
            h.update(self._identity(row).encode())
            h.update(b"\x00")
        return f"{self.name}-{len(rows)}-{h.hexdigest()}"
