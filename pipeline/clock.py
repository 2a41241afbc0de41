"""Processing-time clocks: the :class:`Clock` protocol and the real :class:`SystemClock`.

Stages that wait in processing time (idle window close, tail-sampling decision
timers) take a ``Clock`` instead of calling :mod:`time`, so tests drive them
with :class:`pipeline.testing.clock.ManualClock` and never sleep.

>>> clock: Clock = SystemClock()
>>> clock.now() <= clock.now()
True
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


class PausableClock:
    """A clock that stands still while paused: elapsed time counts only while running.

    The window stage reads time through one: while partials it has fetched are
    still waiting to be merged, nothing is idle, whatever the wall clock says, so
    it pauses the clock instead of letting a slow stage look like a quiet stream.

    >>> from pipeline.testing.clock import ManualClock
    >>> base = ManualClock(100.0)
    >>> clock = PausableClock(base)
    >>> clock.set_paused(True); base.advance(30); clock.now()
    100.0
    >>> clock.set_paused(False); base.advance(5); clock.now()
    105.0
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._paused_at: float | None = None
        self._paused_total = 0.0

    def set_paused(self, paused: bool) -> None:
        """Stop (True) or restart (False) the clock; repeating a state changes nothing."""
        if paused and self._paused_at is None:
            self._paused_at = self._clock.now()
        elif not paused and self._paused_at is not None:
            self._paused_total += self._clock.now() - self._paused_at
            self._paused_at = None

    def now(self) -> float:
        if self._paused_at is not None:
            return self._paused_at - self._paused_total
        return self._clock.now() - self._paused_total
