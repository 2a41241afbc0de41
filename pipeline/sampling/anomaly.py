"""Keep every trace touching an operation that is currently flagged anomalous.

When a window of ``(service, operation)`` scores anomalous, the pipeline calls
:meth:`AnomalyFlags.flag` with an ``until_ns``; while the flag holds, every
trace with a span on that operation is kept, and those traces become the
alert's exemplars.

Expiry is in *event time*: a span matches while ``span.timestamp_ns <=
until_ns``, the same Unix-nanosecond axis as window bounds, so a replay of a
backlog keeps the same traces a live run would have (given the same flags), and
the shell can derive ``until_ns`` from the window end plus a hold time.

Owner and threads: the window stage (:mod:`pipeline.windows.stage`) is the only
writer. On the Faust event loop thread it flags the operation of each firing
alert and, after each successful close, prunes the flags whose windows every
series has closed (:meth:`AnomalyFlags.prune`); past ``max_flags`` the
soonest-expiring flag goes first. The ingest thread only reads
(:meth:`~AnomalyFlags.matches` and ``len``, each one dict operation, atomic
under the GIL and in free-threaded builds). Writers take a lock, so a prune
never iterates the dict while a flag is added.

>>> flags = AnomalyFlags()
>>> flags.flag("pay", "POST /pay", until_ns=100)
>>> flags.matches("pay", "POST /pay", 50), flags.matches("pay", "POST /pay", 150)
(True, False)
>>> flags.prune(now_ns=101)
1
"""

from __future__ import annotations

import threading

from pipeline.sampling.policy import Decision, TraceData


class AnomalyFlags:
    """The set of operations flagged anomalous, each until an event-time instant."""

    def __init__(self, max_flags: int = 10_000) -> None:
        self.max_flags = max_flags
        self._until: dict[tuple[str, str], int] = {}
        self._writing = threading.Lock()

    def flag(self, service: str, operation: str, until_ns: int) -> None:
        """Flag an operation until ``until_ns``; re-flagging only ever extends a flag."""
        key = (service, operation)
        with self._writing:
            self._until[key] = max(until_ns, self._until.get(key, until_ns))
            if len(self._until) > self.max_flags:
                soonest = min(self._until, key=self._until.__getitem__)
                del self._until[soonest]

    def matches(self, service: str, operation: str, timestamp_ns: int) -> bool:
        """Whether a span of this operation starting at ``timestamp_ns`` is flagged."""
        until = self._until.get((service, operation))
        return until is not None and timestamp_ns <= until

    def prune(self, now_ns: int) -> int:
        """Forget flags that ended before ``now_ns``; returns how many went."""
        with self._writing:
            expired = [key for key, until in self._until.items() if until < now_ns]
            for key in expired:
                del self._until[key]
        return len(expired)

    def __len__(self) -> int:
        return len(self._until)


class AnomalyPolicy:
    """KEEP when any span of the trace is on a flagged operation within its flag's time."""

    def __init__(self, flags: AnomalyFlags, name: str = "anomaly") -> None:
        self.name = name
        self.flags = flags

    def evaluate(self, trace: TraceData) -> Decision:
        """KEEP on the first span that matches a live flag."""
        if not len(self.flags):
            return Decision.DROP
        for span in trace.spans:
            if self.flags.matches(span.service_name, span.operation, span.timestamp_ns):
                return Decision.KEEP
        return Decision.DROP
