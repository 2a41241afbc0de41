"""A bounded ring of (good, total) buckets, one per step of event time.

:class:`Ring` keeps the last ``size`` buckets of ``step_ns`` each, densely from
``base_ns``; a count for a start past the end moves the ring on (the oldest
buckets drop out), a count for an earlier start moves the base back while the ring
still spans it from its newest bucket, and is refused as too old beyond that.
Its JSON form (``[step_ns, size, base_ns, goods, totals]``) is checked when read:
it comes from a changelog topic.

>>> r = Ring(step_ns=60, size=3)
>>> r.add(0, 9, 10), r.add(60, 5, 5), r.add(120, 0, 2)
(True, True, True)
>>> r.sum(end_ns=180, span_ns=120)  # the buckets starting at 60 and 120
Counts(good=5, total=7)
>>> r.add(180, 1, 1), r.base_ns, r.add(0, 1, 1)  # 0 dropped out: too old now
(True, 60, False)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pipeline.checked import StateError, count, int64, items

#: Bounds on a stored ring (far above what a valid SLO file asks for).
MAX_RING = 1_000_000


class Counts(NamedTuple):
    """Good and total requests; ``bad`` is the rest."""

    good: int
    total: int

    @property
    def bad(self) -> int:
        return self.total - self.good


class Ring:
    """The last ``size`` buckets of ``step_ns``; bucket ``i`` starts at ``base_ns + i*step_ns``."""

    __slots__ = ("base_ns", "goods", "size", "step_ns", "totals")

    def __init__(self, step_ns: int, size: int, base_ns: int | None = None) -> None:
        if step_ns <= 0 or not 0 < size <= MAX_RING:
            raise ValueError(f"a ring needs step_ns > 0 and 0 < size <= {MAX_RING}")
        self.step_ns, self.size = step_ns, size
        self.base_ns = base_ns
        self.goods: list[int] = []
        self.totals: list[int] = []

    def add(self, start_ns: int, good: int, total: int) -> bool:
        """Count into the bucket holding ``start_ns``; False (nothing counted) if too old."""
        bucket = start_ns - start_ns % self.step_ns
        if self.base_ns is None:
            self.base_ns = bucket
        if bucket < self.base_ns and not self._extend_back(bucket):
            return False
        index = (bucket - self.base_ns) // self.step_ns
        if index >= self.size:
            self._advance(index - self.size + 1)
            index = self.size - 1
        missing = index + 1 - len(self.goods)
        if missing > 0:
            self.goods.extend([0] * missing)
            self.totals.extend([0] * missing)
        self.goods[index] += good
        self.totals[index] += total
        return True

    def _extend_back(self, bucket: int) -> bool:
        """Move the base back to ``bucket`` if the ring still spans it from its newest."""
        assert self.base_ns is not None
        end = self.base_ns + len(self.goods) * self.step_ns
        if bucket < end - self.size * self.step_ns:
            return False
        steps = (self.base_ns - bucket) // self.step_ns
        self.goods[:0], self.totals[:0] = [0] * steps, [0] * steps
        self.base_ns = bucket
        return True

    def _advance(self, steps: int) -> None:
        assert self.base_ns is not None
        self.base_ns += steps * self.step_ns
        del self.goods[:steps], self.totals[:steps]

    def sum(self, end_ns: int, span_ns: int) -> Counts:
        """Totals of the buckets starting in ``[end_ns - span_ns, end_ns)``."""
        if self.base_ns is None:
            return Counts(0, 0)
        lo = max(0, -(-(end_ns - span_ns - self.base_ns) // self.step_ns))
        hi = min(len(self.goods), -(-(end_ns - self.base_ns) // self.step_ns))
        if hi <= lo:
            return Counts(0, 0)
        return Counts(sum(self.goods[lo:hi]), sum(self.totals[lo:hi]))

    def to_list(self) -> list[Any]:
        return [self.step_ns, self.size, self.base_ns, list(self.goods), list(self.totals)]

    @classmethod
    def from_list(cls, value: object, where: str) -> Ring:
        """Rebuild :meth:`to_list` output, checked (``StateError``)."""
        step, size, base, goods, totals = items(value, where, 5)
        ring = cls(count(step, where) or 1, min(max(count(size, where, MAX_RING), 1), MAX_RING))
        ring.base_ns = None if base is None else int64(base, where)
        ring.goods, ring.totals = (
            _counts(goods, where, ring.size),
            _counts(totals, where, ring.size),
        )
        if len(ring.goods) != len(ring.totals) or any(
            g > t for g, t in zip(ring.goods, ring.totals, strict=True)
        ):
            raise StateError("schema", f"{where}: goods and totals do not pair up")
        if ring.goods and ring.base_ns is None:
            raise StateError("schema", f"{where}: counts without a base")
        return ring


def _counts(value: object, where: str, limit: int) -> list[int]:
    if not isinstance(value, list) or len(value) > limit:
        raise StateError("schema", f"{where}: a list of at most {limit} counts")
    return [count(v, where) for v in value]
