"""Processing-time clocks: the :class:`Clock` protocol and two clocks that honour it.

Stages that wait in processing time (idle window close, tail-sampling decision
timers) take a ``Clock`` instead of calling :mod:`time`: :class:`SystemClock` in the
worker, :class:`ManualClock` in tests and the in-process benchmark, which never sleep.

>>> clock: Clock = SystemClock()
>>> clock.now() <= clock.now()
True
>>> manual = ManualClock()
>>> manual.advance(2.5)
>>> manual.now()
2.5
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of processing time in seconds; only differences between readings matter."""

    def now(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    """The process's monotonic clock (``time.monotonic``): immune to wall-clock jumps.

    Its readings are not Unix time; use them for elapsed-time decisions only.
    """

    def now(self) -> float:
        """Seconds since an arbitrary, fixed point."""
        return time.monotonic()


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
