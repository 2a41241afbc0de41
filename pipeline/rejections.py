"""Stored state that does not parse: counted every time, logged once per key.

The window stage's tables are restored from changelog topics, which anyone
allowed to write a topic can append to. A value (or key) that fails its
checks is rejected: ``spanstream_state_rejected_total{table, reason}`` counts
it, one warning per key names it (escaped: the key is attacker-chosen text),
and the caller carries on without it, e.g. the series starts its warm-up over.
"""

from __future__ import annotations

import logging

from pipeline import metrics
from pipeline.checked import StateError

log = logging.getLogger(__name__)

#: Distinct keys logged per table; past it rejections are still counted, not logged.
MAX_LOGGED = 10_000


class Rejections:
    """The rejection counter and log of one table."""

    def __init__(self, table: str) -> None:
        self.table = table
        self._logged: set[str | bytes] = set()

    def reject(self, key: str | bytes, exc: StateError, outcome: str) -> None:
        """Count one rejected value; log it unless this key was logged before."""
        metrics.STATE_REJECTED.labels(self.table, exc.reason).inc()
        if key in self._logged or len(self._logged) >= MAX_LOGGED:
            return
        self._logged.add(key)
        log.warning(
            "%s table: rejected the stored record of key %s (%s); %s",
            self.table,
            escaped(key),
            exc,
            outcome,
        )


def escaped(key: str | bytes, limit: int = 200) -> str:
    r"""A key as printable ASCII (control characters escaped), cut to ``limit`` characters.

    >>> print(escaped("GET /\x1b[2J"))
    'GET /\x1b[2J'
    """
    text = ascii(key)
    return text if len(text) <= limit else text[:limit] + "..."
