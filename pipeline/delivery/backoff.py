"""Retry policy of alert delivery: what a receiver's answer means, and how long to wait.

A 2xx is delivered. A 5xx, no answer at all (refused, reset, timed out), and the
4xx that mean "later" (408, 425, 429) are retried, for ever: the forwarder holds
that alert (and its partition's commit) until the receiver takes it, so a receiver
down for hours loses nothing. Any other answer (4xx, a redirect) is permanent: the
same request would be refused again, so the record goes to the dead-letter topic.

>>> verdict(200), verdict(503), verdict(None), verdict(429), verdict(400), verdict(301)
('delivered', 'retry', 'retry', 'retry', 'permanent', 'permanent')
>>> policy = Backoff(initial=0.5, ceiling=30.0)
>>> [policy.delay(n, jitter=1.0) for n in (1, 2, 3, 7, 8, 50)]
[0.5, 1.0, 2.0, 30.0, 30.0, 30.0]
>>> policy.delay(3, jitter=0.0)  # jitter spreads each delay over [half, full]
1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["delivered", "retry", "permanent"]
#: 4xx answers that ask the client to come back later rather than refuse the request.
RETRYABLE_4XX = frozenset({408, 425, 429})
#: Doublings past which the delay cannot grow (keeps 2**n finite).
_MAX_DOUBLINGS = 32


def verdict(status: int | None) -> Verdict:
    """What an HTTP status (None: no answer, e.g. connection refused or timeout) means."""
    if status is None or status >= 500 or status in RETRYABLE_4XX:
        return "retry"
    if 200 <= status < 300:
        return "delivered"
    return "permanent"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``initial`` doubling per failure up to ``ceiling``."""

    initial: float
    ceiling: float

    def delay(self, attempt: int, jitter: float) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based).

        ``jitter`` in [0, 1] (random in use) spreads the delay over [half, full] of its
        exponential value, so forwarders that failed together do not retry in lockstep,
        yet none retries sooner than half the schedule.
        """
        doublings = min(max(attempt, 1) - 1, _MAX_DOUBLINGS)
        full = min(self.ceiling, self.initial * 2**doublings)
        return full * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))
