"""Tail-sampling settings, and how often the kept spans are written."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings.env import enforce


@dataclass(frozen=True)
class SamplingOptions:
    """Tail sampling and the trace sink's batches (environment variable and default)."""

    #: SPANSTREAM_DECISION_WAIT_SECONDS: tail-sampling waits this long after a trace's last span.
    decision_wait_seconds: float = 5.0
    #: SPANSTREAM_BASELINE_RATE: share of otherwise-unremarkable traces kept (0..1).
    baseline_rate: float = 0.05
    #: SPANSTREAM_FLUSH_INTERVAL_SECONDS: kept spans are inserted at least this often.
    flush_interval_seconds: float = 1.0
    #: SPANSTREAM_BATCH_MAX_TRACES: or sooner, once this many kept traces are pending.
    batch_max_traces: int = 2000


def check(s: SamplingOptions) -> None:
    """Positive waits and batch sizes; the baseline rate is a share."""
    enforce(
        s,
        [
            ("decision_wait_seconds", s.decision_wait_seconds > 0, "must be > 0"),
            ("baseline_rate", 0.0 <= s.baseline_rate <= 1.0, "must be within [0, 1]"),
            ("flush_interval_seconds", s.flush_interval_seconds > 0, "must be > 0"),
            ("batch_max_traces", s.batch_max_traces > 0, "must be > 0"),
        ],
    )
