"""A hand-driven :class:`~pipeline.clock.Clock` for tests: time moves only when told.

>>> clock = ManualClock()
>>> clock.advance(2.5)
>>> clock.now()
2.5
"""

from __future__ import annotations


class ManualClock:
    """A clock that stands still until :meth:`advance` moves it forward."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        """The current manual time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward; a negative step would break the monotonic contract."""
        if seconds < 0:
            raise ValueError(f"ManualClock cannot go backwards (advance({seconds}))")
        self._now += seconds
