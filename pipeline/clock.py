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
