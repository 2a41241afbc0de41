"""Window stage settings: window size, lateness and how often partials are cut."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings.env import enforce


@dataclass(frozen=True)
class WindowOptions:
    """Tumbling RED windows (environment variable and default)."""

    #: SPANSTREAM_WINDOW_SECONDS: tumbling window size for RED metrics.
    window_seconds: int = 60
    #: SPANSTREAM_ALLOWED_LATENESS_SECONDS: a window closes this long after its end.
    allowed_lateness_seconds: int = 30
    #: SPANSTREAM_CUT_INTERVAL_SECONDS: how often window partials are sent per input partition.
    cut_interval_seconds: float = 1.0


def check(s: WindowOptions) -> None:
    """Windows have a length, lateness is not negative, partials are cut at some rate."""
    enforce(
        s,
        [
            ("window_seconds", s.window_seconds > 0, "must be > 0"),
            ("allowed_lateness_seconds", s.allowed_lateness_seconds >= 0, "must be >= 0"),
            ("cut_interval_seconds", s.cut_interval_seconds > 0, "must be > 0"),
        ],
    )
