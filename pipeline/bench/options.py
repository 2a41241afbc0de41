"""The benchmark's options, the names of one run's topics and groups, and its error type."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from pipeline.errors import SpanstreamError

log = logging.getLogger("spanstream.bench")


class BenchFailed(SpanstreamError):
    """A phase of the benchmark did not complete (timeout, worker died, counts differ)."""


# --- options and names -------------------------------------------------------------------


@dataclass(frozen=True)
class BenchOptions:
    """What to measure; the CLI validates these (see :mod:`pipeline.commands.bench`)."""

    messages: int = 150_000
    spans_per_trace: int = 20
    batch_traces: int = 0
    seed: int = 1
    timeout_s: float = 600.0
    progress_s: float = 5.0
    keep_data: bool = False
    #: The worker's SPANSTREAM_MAX_BUFFERED_TRACES; None leaves its default.
    max_buffered_traces: int | None = None

    @property
    def traces(self) -> int:
        """Traces to generate: ``batch_traces`` per message when batching, else one."""
        return self.messages * max(1, self.batch_traces)


@dataclass(frozen=True)
class BenchNames:
    """Uniquely named topics and groups of one run, all starting with ``prefix``.

    >>> names = BenchNames.for_run("abc123")
    >>> names.input, names.group, names.ceiling_group
    ('spanstream-bench-abc123', 'spanstream-bench-abc123', 'spanstream-bench-abc123-ceiling')
    >>> names.env()["SPANSTREAM_PARTIALS_TOPIC"]
    'spanstream-bench-abc123-partials'
    """

    prefix: str
    input: str
    dlq: str
    alerts: str
    partials: str
    group: str
    ceiling_group: str

    @classmethod
    def for_run(cls, run_id: str | None = None) -> BenchNames:
        prefix = f"spanstream-bench-{run_id or uuid.uuid4().hex[:8]}"
        return cls(
            prefix=prefix,
            input=prefix,
            dlq=f"{prefix}-dlq",
            alerts=f"{prefix}-alerts",
            partials=f"{prefix}-partials",
            group=prefix,
            ceiling_group=f"{prefix}-ceiling",
        )

    def env(self) -> dict[str, str]:
        """The worker's ``SPANSTREAM_*`` topic and group settings."""
        return {
            "SPANSTREAM_INPUT_TOPIC": self.input,
            "SPANSTREAM_DLQ_TOPIC": self.dlq,
            "SPANSTREAM_ALERT_TOPIC": self.alerts,
            "SPANSTREAM_PARTIALS_TOPIC": self.partials,
            "SPANSTREAM_GROUP": self.group,
        }


class Progress:
    """Logs ``message()`` at most every ``every_s`` seconds."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._next = time.monotonic() + every_s

    def maybe(self, message: str) -> None:
        now = time.monotonic()
        if now >= self._next:
            log.info("%s", message)
            self._next = now + self.every_s
